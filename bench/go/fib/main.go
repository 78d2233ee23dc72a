// fib: Go twin of bench/c/fib.c.  pfib(n) = n <= cutoff ? sfib(n) :
// go pfib(n-1); pfib(n-2) inline; wait; sum.
//
// Usage: fib [-w N] n cutoff [speedup]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var cutoff int

//go:noinline
func sfib(n int) int {
	if n < 2 {
		return n
	}
	return sfib(n-1) + sfib(n-2)
}

func pfib(n int) int {
	if n <= cutoff {
		return sfib(n)
	}
	var wg sync.WaitGroup
	var x int
	wg.Add(1)
	go func() {
		x = pfib(n - 1)
		wg.Done()
	}()
	y := pfib(n - 2)
	wg.Wait()
	return x + y
}

func countSpawns(n int) int {
	if n <= cutoff {
		return 0
	}
	return 1 + countSpawns(n-1) + countSpawns(n-2)
}

func fibIter(n int) int {
	a, b := 0, 1
	for i := 0; i < n; i++ {
		a, b = b, a+b
	}
	return a
}

func argInt(i, dflt int) int {
	if i >= flag.NArg() {
		return dflt
	}
	v, err := strconv.Atoi(flag.Arg(i))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fib:", err)
		os.Exit(2)
	}
	return v
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	n := argInt(0, 30)
	cutoff = argInt(1, 1)
	speedup := flag.NArg() > 2 && flag.Arg(2) == "speedup"
	want := fibIter(n)
	spawns := countSpawns(n)
	var seqNs int64
	if speedup {
		// Sequential time first, on one thread, before any goroutine runs.
		t0 := time.Now()
		s := sfib(n)
		seqNs = time.Since(t0).Nanoseconds()
		if s != want {
			want = -1
		}
	}
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	t0 := time.Now()
	r := pfib(n)
	ns := time.Since(t0).Nanoseconds()
	check := "ok"
	if r != want {
		check = "fail"
	}
	sec := float64(ns) / 1e9
	if speedup {
		fmt.Printf("fib%d speedup=%.3f sec=%.4f seq_sec=%.4f spawns=%d "+
			"cutoff=%d check=%s\n", n, float64(seqNs)/float64(ns), sec,
			float64(seqNs)/1e9, spawns, cutoff, check)
	} else {
		fmt.Printf("fib%d sec=%.4f spawns_per_sec=%.0f spawns=%d cutoff=%d "+
			"check=%s\n", n, sec, float64(spawns)/sec, spawns, cutoff, check)
	}
	if check != "ok" {
		os.Exit(1)
	}
}
