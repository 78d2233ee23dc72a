// skynet: Go twin of bench/c/skynet.c.  Root size 1,000,000, div 10:
// 1,111,111 goroutines; the result must be 499,999,500,000.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

const (
	rootSize = 1000000
	div      = 10
	want     = 499999500000
)

func skynet(out chan<- int64, num, size int64) {
	if size == 1 {
		out <- num
		return
	}
	rc := make(chan int64)
	kid := size / div
	for i := int64(0); i < div; i++ {
		go skynet(rc, num+i*kid, kid)
	}
	var sum int64
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	out <- sum
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	out := make(chan int64)
	t0 := time.Now()
	go skynet(out, 0, rootSize)
	sum := <-out
	ns := time.Since(t0).Nanoseconds()
	check := "ok"
	if sum != want {
		check = "fail"
	}
	fmt.Printf("skynet sec=%.4f coroutines=1111111 sum=%d check=%s\n",
		float64(ns)/1e9, sum, check)
	if check != "ok" {
		os.Exit(1)
	}
}
