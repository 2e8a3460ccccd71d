// commstime.go - the Go peer of bench_csp.c: the classic Commstime network
// (prefix, delta, successor, consumer) on unbuffered channels, one
// goroutine each. Prints "<communications> <nanoseconds> <last value>".
// Built and run by bench_csp with Debian's golang-go.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func prefix(in <-chan int64, out chan<- int64) {
	out <- 0
	for v := range in {
		out <- v
	}
}

func delta(in <-chan int64, out1, out2 chan<- int64) {
	for v := range in {
		out1 <- v
		out2 <- v
	}
}

func succ(in <-chan int64, out chan<- int64) {
	for v := range in {
		out <- v + 1
	}
}

func main() {
	cycles := int64(100000)
	if len(os.Args) > 1 {
		n, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, "usage: commstime CYCLES")
			os.Exit(2)
		}
		cycles = n
	}
	a, b, c, d := make(chan int64), make(chan int64), make(chan int64), make(chan int64)
	go prefix(c, a)
	go delta(a, b, d)
	go succ(b, c)
	// The consumer: the first value starts the clock (the network is up).
	last := <-d
	t0 := time.Now()
	for i := int64(1); i < cycles; i++ {
		last = <-d
	}
	ns := time.Since(t0).Nanoseconds()
	// Each cycle is four communications: prefix->delta, delta->succ,
	// succ->prefix, delta->consumer.
	fmt.Printf("%d %d %d\n", 4*(cycles-1), ns, last)
}
