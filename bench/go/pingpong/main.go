// pingpong: Go twin of bench/c/pingpong.c.  Main sends v on one
// unbuffered chan int, a peer replies v+1 on another; 1,000,000 round
// trips, each reply checked.  Run with -w 1 and -w 2.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

const rounds = 1000000

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	ping := make(chan int)
	pong := make(chan int)
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(done)
	}()
	bad := 0
	for v := 0; v < rounds; v++ {
		ping <- v
		if <-pong != v+1 {
			bad++
		}
	}
	close(ping)
	<-done
	ns := time.Since(t0).Nanoseconds()
	check := "ok"
	if bad != 0 {
		check = "fail"
	}
	fmt.Printf("pingpong ns_per_rt=%.1f rounds=%d workers=%d check=%s\n",
		float64(ns)/rounds, rounds, runtime.GOMAXPROCS(0), check)
	if check != "ok" {
		os.Exit(1)
	}
}
