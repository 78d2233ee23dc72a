// echo_server: Go twin of examples/echo for the "echo" workload of
// bench/run.  One goroutine per connection, 4 KiB reads, each chunk
// written back until EOF.  Listens on 127.0.0.1:PORT until killed; the
// load comes from bench/c/echo_load.
//
//	echo_server [-w GOMAXPROCS] [-port PORT]
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	port := flag.String("port", "7007", "TCP port on 127.0.0.1")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+*port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_server:", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "echo_server: listening on port %s\n", *port)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo_server: accept:", err)
			os.Exit(1)
		}
		go serve(c)
	}
}
