// yield: Go twin of bench/c/yield.c.  GOMAXPROCS=1; two goroutines each
// call runtime.Gosched 10,000,000 times.  Prints ns per switch.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

const yields = 10000000

func main() {
	flag.Int("w", 1, "ignored: always 1")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	var wg sync.WaitGroup
	var total [2]int64
	t0 := time.Now()
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func(g int) {
			n := int64(0)
			for i := 0; i < yields; i++ {
				runtime.Gosched()
				n++
			}
			total[g] = n
			wg.Done()
		}(g)
	}
	wg.Wait()
	ns := time.Since(t0).Nanoseconds()
	sum := total[0] + total[1]
	check := "ok"
	if sum != 2*yields {
		check = "fail"
	}
	fmt.Printf("yield ns_per_switch=%.2f yields=%d workers=1 check=%s\n",
		float64(ns)/(2*yields), sum, check)
	if check != "ok" {
		os.Exit(1)
	}
}
