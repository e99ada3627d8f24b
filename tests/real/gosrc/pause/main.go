// pause: the pod sandbox process of the node tier (and a do-nothing container).
// No registry is reachable, so the sandbox image is built here: a static binary
// that says it started, then waits for SIGTERM/SIGINT and exits 0.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Printf("pause: started as uid %d\n", os.Getuid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	fmt.Printf("pause: %v, exiting\n", s)
}
