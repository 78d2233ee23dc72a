// chan: Go twin of bench/c/chan.c.  One chan int64 of capacity CAP; P
// producers send N/P distinct values each (p*(N/P)+i); the channel is
// closed after a WaitGroup of the producers; C consumers range over it and
// add what they got.  The sum must be N*(N-1)/2.
//
// Usage: chan [-w W] P C CAP N
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func argInt(i, dflt int) int {
	if i >= flag.NArg() {
		return dflt
	}
	v, err := strconv.Atoi(flag.Arg(i))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chan:", err)
		os.Exit(2)
	}
	return v
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	p, c, capacity, n := argInt(0, 1), argInt(1, 1), argInt(2, 128),
		argInt(3, 10000000)
	if p < 1 || c < 1 || n%p != 0 {
		fmt.Fprintln(os.Stderr, "usage: chan [-w W] P C CAP N (P divides N)")
		os.Exit(2)
	}
	ch := make(chan int64, capacity)
	var total int64
	var prod, cons sync.WaitGroup
	per := int64(n / p)
	t0 := time.Now()
	cons.Add(c)
	for i := 0; i < c; i++ {
		go func() {
			var sum int64
			for v := range ch {
				sum += v
			}
			atomic.AddInt64(&total, sum)
			cons.Done()
		}()
	}
	prod.Add(p)
	for i := 0; i < p; i++ {
		go func(base int64) {
			for j := int64(0); j < per; j++ {
				ch <- base + j
			}
			prod.Done()
		}(int64(i) * per)
	}
	go func() {
		prod.Wait()
		close(ch)
	}()
	cons.Wait()
	ns := time.Since(t0).Nanoseconds()
	check := "ok"
	if total != int64(n)*int64(n-1)/2 {
		check = "fail"
	}
	fmt.Printf("chan msgs_per_sec=%.0f p=%d c=%d cap=%d n=%d sum=%d "+
		"check=%s\n", float64(n)/(float64(ns)/1e9), p, c, capacity, n,
		total, check)
	if check != "ok" {
		os.Exit(1)
	}
}
