// sleep: Go twin of bench/c/sleep.c.  10,000 goroutines, each sleeping a
// random duration in [1, 100] ms (splitmix64 of seed and index: the same
// durations as the C side) with time.Sleep, measuring lateness = wake
// time - (time before the call + duration).  Reports p50, p99 and max
// lateness in microseconds and spawn_ms, the time main took to start them
// all; check=fail if one woke early.
//
//	sleep [-w GOMAXPROCS] [COUNT [SEED]]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const minNs, maxNs = 1000000, 100000000

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func argInt(i int, dflt int64) int64 {
	if flag.NArg() <= i {
		return dflt
	}
	v, err := strconv.ParseInt(flag.Arg(i), 0, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sleep:", err)
		os.Exit(2)
	}
	return v
}

func pctUs(late []int64, q float64) float64 {
	i := int(q * float64(len(late)))
	if i >= len(late) {
		i = len(late) - 1
	}
	return float64(late[i]) / 1e3
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	n := argInt(0, 10000)
	seed := uint64(argInt(1, 1))
	late := make([]int64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			d := minNs + int64(splitmix64(seed+uint64(i))%(maxNs-minNs+1))
			t0 := time.Now()
			time.Sleep(time.Duration(d))
			late[i] = time.Since(t0).Nanoseconds() - d
			wg.Done()
		}(i)
	}
	spawnMs := float64(time.Since(start).Nanoseconds()) / 1e6
	wg.Wait()
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	check := "ok"
	if late[0] < 0 {
		check = "fail"
	}
	fmt.Printf("sleep p99_us=%.1f p50_us=%.1f max_us=%.1f min_us=%.1f spawn_ms=%.1f n=%d workers=%d check=%s\n",
		pctUs(late, 0.99), pctUs(late, 0.50), float64(late[n-1])/1e3,
		float64(late[0])/1e3, spawnMs, n, runtime.GOMAXPROCS(0), check)
	if check != "ok" {
		os.Exit(1)
	}
}
