package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// socketOwner returns which of pids holds the local end of the loopback
// TCP connection from 127.0.0.1:fromPort to 127.0.0.1:toPort: the kernel's
// socket table gives the socket's inode, and each process's open files say
// whether it holds it. ok is false if the connection is gone or none of
// pids holds it.
func socketOwner(fromPort, toPort int, pids []int) (pid int, ok bool, err error) {
	inode, err := socketInode(fromPort, toPort)
	if err != nil || inode == "" {
		return 0, false, err
	}
	link := "socket:[" + inode + "]"
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // exited
		}
		for _, fd := range fds {
			if l, err := os.Readlink(dir + "/" + fd.Name()); err == nil && l == link {
				return pid, true, nil
			}
		}
	}
	return 0, false, nil
}

// socketInode finds the inode of the socket whose local address is
// 127.0.0.1:fromPort and remote address 127.0.0.1:toPort in
// /proc/net/tcp, or "" if there is none (or it has no inode any more).
func socketInode(fromPort, toPort int) (string, error) {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "", fmt.Errorf("reading the socket table: %w", err)
	}
	// Addresses are hex: the IPv4 address in host (little-endian) byte
	// order, then the port.
	local := fmt.Sprintf("0100007F:%04X", fromPort)
	remote := fmt.Sprintf("0100007F:%04X", toPort)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // the header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		if len(f) < 10 || f[1] != local || f[2] != remote {
			continue
		}
		if f[9] == "0" {
			return "", nil
		}
		if _, err := strconv.ParseUint(f[9], 10, 64); err != nil {
			return "", fmt.Errorf("/proc/net/tcp: inode %q", f[9])
		}
		return f[9], nil
	}
	return "", sc.Err()
}

// checkSocketTable says whether socketOwner can work here.
func checkSocketTable() error {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		return fmt.Errorf("the harness tells which server dialled a link from /proc/net/tcp: %w", err)
	}
	return nil
}
