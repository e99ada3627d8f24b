// chown: the node tier's stand-in for the busybox image's /bin/chown, which the
// rendered agent DaemonSets' socket-dir-owner init container runs (no registry is
// reachable here).  It does exactly what that container asks of busybox:
// `chown <uid>:<gid> <path>...` with numeric ids, not following a final symlink
// out of the directory (lchown), nothing recursive; anything else is an error.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fail("usage: chown <uid>:<gid> <path>...")
	}
	ids := strings.SplitN(os.Args[1], ":", 2)
	if len(ids) != 2 {
		fail("want numeric <uid>:<gid>, got %q", os.Args[1])
	}
	uid, err1 := strconv.Atoi(ids[0])
	gid, err2 := strconv.Atoi(ids[1])
	if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		fail("want numeric <uid>:<gid>, got %q", os.Args[1])
	}
	for _, p := range os.Args[2:] {
		if err := os.Lchown(p, uid, gid); err != nil {
			fail("%v", err)
		}
		fmt.Printf("chown: %s -> %d:%d\n", p, uid, gid)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chown: "+format+"\n", args...)
	os.Exit(1)
}
