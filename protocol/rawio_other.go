//go:build !linux

package protocol

import "net"

// fastConn is nc itself: the raw reads and writes are written for Linux.
func fastConn(nc net.Conn) net.Conn { return nc }

// RawListener is ln itself: the raw reads and writes are written for Linux.
func RawListener(ln net.Listener) net.Listener { return ln }
