// http_server: Go twin of examples/httpd for the "http" workload of
// bench/run.  net/http; GET / returns the 13-byte "Hello, world!" as
// text/plain (keep-alive is net/http's default).  Listens on
// 127.0.0.1:PORT until killed; the load comes from wrk.
//
//	http_server [-w GOMAXPROCS] [-port PORT]
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
)

var body = []byte("Hello, world!")

func hello(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", "13")
	w.Write(body)
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	port := flag.String("port", "8080", "TCP port on 127.0.0.1")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	fmt.Fprintf(os.Stderr, "http_server: listening on port %s\n", *port)
	err := http.ListenAndServe("127.0.0.1:"+*port, http.HandlerFunc(hello))
	fmt.Fprintln(os.Stderr, "http_server:", err)
	os.Exit(2)
}
