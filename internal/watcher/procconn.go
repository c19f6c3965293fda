package watcher

import (
	"encoding/binary"
	"fmt"
)

// Proc connector event kinds (linux/cn_proc.h) the process table uses.
const (
	procFork = 0x00000001
	procExec = 0x00000002
	procUID  = 0x00000004
	procSID  = 0x00000080
	procExit = 0x80000000
)

// procEvent is one decoded proc connector event. For fork, PID/TGID are
// the child's and ParentTGID the forking process's; for uid, UID is the
// effective user ID.
type procEvent struct {
	what       uint32
	pid, tgid  int
	parentTGID int
	uid        int
}

// Offsets in a proc connector datagram: nlmsghdr (16 bytes), cn_msg (20
// bytes), then struct proc_event: what, cpu, timestamp (16 bytes), data.
const (
	nlmsgHdrLen  = 16
	cnMsgLen     = 20
	procWhatOff  = nlmsgHdrLen + cnMsgLen
	procDataOff  = procWhatOff + 16
	procEventMin = procDataOff + 8
)

// parseProcEvents decodes the netlink messages of one datagram from the
// proc connector. Messages it does not know are skipped; it fails on any
// length that does not fit, never reading past buf.
func parseProcEvents(buf []byte) ([]procEvent, error) {
	le := binary.LittleEndian
	var out []procEvent
	for len(buf) > 0 {
		if len(buf) < nlmsgHdrLen {
			return out, fmt.Errorf("proc connector: short message (%d bytes)", len(buf))
		}
		n := int(le.Uint32(buf))
		if n < nlmsgHdrLen || n > len(buf) {
			return out, fmt.Errorf("proc connector: message length %d in %d bytes", n, len(buf))
		}
		msg := buf[:n]
		if next := (n + 3) &^ 3; next < len(buf) {
			buf = buf[next:]
		} else {
			buf = nil
		}
		if len(msg) < procEventMin {
			continue
		}
		d := msg[procDataOff:]
		u := func(i int) int { return int(le.Uint32(d[4*i:])) }
		ev := procEvent{what: le.Uint32(msg[procWhatOff:]), pid: u(0), tgid: u(1)}
		switch ev.what {
		case procFork:
			if len(d) < 16 {
				continue
			}
			ev.parentTGID, ev.pid, ev.tgid = u(1), u(2), u(3)
		case procUID:
			if len(d) < 16 {
				continue
			}
			ev.uid = u(3)
		case procExec, procSID, procExit:
		default:
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}
