// file: Go twin of bench/c/file.c.  READS (262,144) random 4 KiB reads
// with os.File.ReadAt from COROS (64) goroutines over PATH, the blocks
// chosen by splitmix64(read index) and pulled from a shared counter.
// Reports seconds and MB/s; sum= matches the C programs'.
//
//	file [-w GOMAXPROCS] PATH [READS [COROS]]
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const block = 4096

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
		fmt.Fprintln(os.Stderr, "file:", err)
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
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: file [-w GOMAXPROCS] PATH [READS [COROS]]")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "file:", err)
		os.Exit(2)
	}
	st, err := f.Stat()
	if err != nil || st.Size() < block {
		fmt.Fprintln(os.Stderr, "file: too small or unreadable")
		os.Exit(2)
	}
	reads, coros := argInt(1, 262144), argInt(2, 64)
	nblocks := uint64(st.Size() / block)
	var next, bad int64 = -1, 0
	var sum uint64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(coros))
	for c := int64(0); c < coros; c++ {
		go func() {
			buf := make([]byte, block)
			var s uint64
			for i := atomic.AddInt64(&next, 1); i < reads; i = atomic.AddInt64(&next, 1) {
				off := int64(splitmix64(uint64(i))%nblocks) * block
				if n, err := f.ReadAt(buf, off); n != block || err != nil {
					atomic.AddInt64(&bad, 1)
					continue
				}
				s += binary.LittleEndian.Uint64(buf)
			}
			atomic.AddUint64(&sum, s)
			wg.Done()
		}()
	}
	wg.Wait()
	sec := time.Since(t0).Seconds()
	check := "ok"
	if bad != 0 {
		check = "fail"
	}
	fmt.Printf("file sec=%.3f mb_per_sec=%.1f reads=%d block=%d sum=%016x coros=%d workers=%d check=%s\n",
		sec, float64(reads)*block/1e6/sec, reads, block, sum, coros,
		runtime.GOMAXPROCS(0), check)
	f.Close()
	if check != "ok" {
		os.Exit(1)
	}
}
