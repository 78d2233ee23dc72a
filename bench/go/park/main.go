// park: Go twin of bench/c/park.c.  After a warm-up, read VmRSS; start
// 1,000,000 goroutines blocked in <-ch on one unbuffered chan int; wait
// until all are parked (a counter bumped just before the receive, plus
// runtime.NumGoroutine, then a short settle); read VmRSS again; report
// the delta / 1e6.  Then close(ch) and wait for all.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	parked = 1000000
	warmup = 1000
)

func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line[6:])
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return -1
			}
			return kb * 1024
		}
	}
	return -1
}

func main() {
	w := flag.Int("w", 0, "GOMAXPROCS (0: Go's default)")
	flag.Parse()
	if *w > 0 {
		runtime.GOMAXPROCS(*w)
	}
	var wg sync.WaitGroup
	wg.Add(warmup)
	for i := 0; i < warmup; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)

	rss0 := rssBytes()
	ch := make(chan int)
	var waiting, closed int64
	wg.Add(parked)
	for i := 0; i < parked; i++ {
		go func() {
			atomic.AddInt64(&waiting, 1)
			if _, ok := <-ch; !ok {
				atomic.AddInt64(&closed, 1)
			}
			wg.Done()
		}()
	}
	ok := false
	limit := time.Now().Add(300 * time.Second)
	for time.Now().Before(limit) {
		if atomic.LoadInt64(&waiting) >= parked &&
			runtime.NumGoroutine() >= parked+1 {
			ok = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // the last few: counter -> park
	rss1 := rssBytes()
	close(ch)
	wg.Wait()
	check := "ok"
	if !ok || rss0 <= 0 || rss1 <= 0 || closed != parked {
		check = "fail"
	}
	fmt.Printf("park bytes_per_coro=%.1f rss_before=%d rss_after=%d "+
		"parked=%d check=%s\n", float64(rss1-rss0)/parked, rss0, rss1,
		closed, check)
	if check != "ok" {
		os.Exit(1)
	}
}
