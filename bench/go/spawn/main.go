// spawn: Go twin of bench/c/spawn.c.  The main goroutine starts 1,000,000
// goroutines; each adds 1 to a shared counter and calls wg.Done; one
// wg.Wait at the end.  Prints "spawn ns_per_op=... check=ok".
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const spawns = 1000000

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	var counter int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(spawns)
	for i := 0; i < spawns; i++ {
		go func() {
			atomic.AddInt64(&counter, 1)
			wg.Done()
		}()
	}
	wg.Wait()
	ns := time.Since(t0).Nanoseconds()
	check := "ok"
	if counter != spawns {
		check = "fail"
	}
	fmt.Printf("spawn ns_per_op=%.1f spawns=%d check=%s\n",
		float64(ns)/spawns, counter, check)
	if check != "ok" {
		os.Exit(1)
	}
}
