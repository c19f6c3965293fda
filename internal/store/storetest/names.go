package storetest

import (
	"slices"
	"strings"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// hashName is a name of the content-addressed form, 64 lowercase hex.
var hashName = blob.Hash([]byte("storetest")).String()

// ValidHandles returns handles every store and the server must accept
// (store.Handle.Check's rule), at least one for each form of name and the
// edges of each form.
func ValidHandles() []store.Handle {
	hs := []store.Handle{{Type: store.Config}}
	for _, t := range []store.FileType{store.Keys, store.Packs, store.Index, store.Snapshots, store.LedgerRemovals} {
		hs = append(hs, store.Handle{Type: t, Name: hashName},
			store.Handle{Type: t, Name: strings.Repeat("0", 64)},
			store.Handle{Type: t, Name: strings.Repeat("f", 64)})
	}
	for _, t := range []store.FileType{store.LedgerEntries, store.LedgerCheckpoints} {
		hs = append(hs, store.Handle{Type: t, Name: strings.Repeat("0", 20)},
			store.Handle{Type: t, Name: "00000000000000000007"},
			store.Handle{Type: t, Name: strings.Repeat("9", 20)})
	}
	for _, n := range []string{"0-0", "0-1.p3", "1-2.p255", "8-0", "0-72057594037927936.p3", "7-9223372036854775807", "0-0.p1"} {
		hs = append(hs, store.Handle{Type: store.LedgerTiles, Name: n})
	}
	return append(hs,
		store.Handle{Type: store.LedgerWitness, Name: "00000000000000000007.0123abcd"},
		store.Handle{Type: store.LedgerWitness, Name: "99999999999999999999.ffffffff"},
		store.Handle{Type: store.LedgerKeys, Name: "signer"},
		store.Handle{Type: store.LedgerKeys, Name: "verifier"},
	)
}

// InvalidHandles returns the attack table: handles every store and the
// server must refuse, each with an error wrapping store.ErrInvalidHandle
// (the server: 400 or 404), before touching storage. They try to escape
// the store's directory or key prefix, hide a file, smuggle a byte a file
// system, a URL or a log treats specially, pass a look-alike of a valid
// name, or put a name of one kind under another.
func InvalidHandles() []store.Handle {
	var hs []store.Handle
	for _, t := range []store.FileType{"", "tmp", ".", "..", "../data", "keys/..", "unknown", "Data", "DATA",
		"data/", "/data", "data/00", "ledger", "ledger/", "ledger/../keys", "ledger\\keys", "config/", "config\x00",
		"keys\n", "kеys"} { // the last with a Cyrillic е
		hs = append(hs, store.Handle{Type: t, Name: hashName})
	}
	hs = append(hs,
		store.Handle{Type: store.Config, Name: "x"},
		store.Handle{Type: store.Config, Name: "config"},
		store.Handle{Type: store.Config, Name: "../config"},
		store.Handle{Type: store.Config, Name: hashName},
	)
	// Names no kind allows.
	anywhere := []string{
		"", ".", "..", "../x", "a/b", "/abs", ".hidden", "a/../../b", "a\\b", "..\\config", "\x00",
		"../" + hashName, "./" + hashName, hashName + "/", "/" + hashName, hashName + "/..",
		"..%2fconfig", "%2e%2e", hashName + "?x", hashName + "#x", hashName + "%00",
		strings.Repeat("a", 4096), strings.Repeat("0", 1<<16),
		"signer/../verifier", "signer\x00", "verifier\n", " signer",
	}
	suffixes := []string{"\x00", "\n", "\r", " ", "\t", ".", "/", "\\", "~", "\u200b", "\ufeff"}
	for _, v := range ValidHandles() {
		if v.Type == store.Config {
			continue
		}
		for _, n := range anywhere {
			hs = append(hs, store.Handle{Type: v.Type, Name: n})
		}
		for _, s := range suffixes {
			hs = append(hs, store.Handle{Type: v.Type, Name: v.Name + s}, store.Handle{Type: v.Type, Name: s + v.Name})
		}
		n := v.Name
		hs = append(hs,
			store.Handle{Type: v.Type, Name: n[:len(n)-1] + "\x00"},
			// Look-alikes: a fullwidth digit, a Cyrillic letter, a
			// superscript digit in place of the last character.
			store.Handle{Type: v.Type, Name: n[:len(n)-1] + "０"},
			store.Handle{Type: v.Type, Name: n[:len(n)-1] + "е"},
			store.Handle{Type: v.Type, Name: n[:len(n)-1] + "¹"},
		)
		if up := strings.ToUpper(n); up != n {
			hs = append(hs, store.Handle{Type: v.Type, Name: up})
		}
		if v.Type != store.LedgerTiles { // names of one length: one short, one long
			hs = append(hs, store.Handle{Type: v.Type, Name: n[:len(n)-1]}, store.Handle{Type: v.Type, Name: n + n[len(n)-1:]})
		}
	}
	// Names of one kind under another kind.
	for _, v := range ValidHandles() {
		for _, w := range ValidHandles() {
			if v.Type != w.Type && w.Type != store.Config && !sameForm(v.Type, w.Type) && w.Name != "" {
				hs = append(hs, store.Handle{Type: v.Type, Name: w.Name})
			}
		}
	}
	// Near misses of each ledger form.
	for _, n := range []string{"0000000000000000007", "000000000000000000007", "+0000000000000000003",
		"-0000000000000000000", "0000000000000000000a", "0x000000000000000007", "1e100000000000000000",
		"٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠"} { // Arabic-Indic zeros
		hs = append(hs, store.Handle{Type: store.LedgerEntries, Name: n}, store.Handle{Type: store.LedgerCheckpoints, Name: n})
	}
	for _, n := range []string{"00-1", "0-01", "0-1.p0", "0-1.p01", "0-1.p", "0-1.p1000", "0-1.P3", "10-1", "-1-0", "0--1",
		"0-+1", "0-1.p-3", "0-1.p3.p3", "0-12345678901234567890", "0-1p3", "0_1", "0-", "-0", "a-0", "0-0 ", "0-0.p3\n"} {
		hs = append(hs, store.Handle{Type: store.LedgerTiles, Name: n})
	}
	for _, n := range []string{"00000000000000000007.0123ABCD", "00000000000000000007.0123abc", "00000000000000000007.0123abcde",
		"00000000000000000007-0123abcd", "000000000000000000070123abcd", "7.0123abcd", "00000000000000000007.", ".0123abcd",
		"00000000000000000007.0123abcd.0123abcd", "00000000000000000007..0123abcd"} {
		hs = append(hs, store.Handle{Type: store.LedgerWitness, Name: n})
	}
	for _, n := range []string{"Signer", "SIGNER", "signers", "sign", "secret", "verifier2", "signer.old", hashName} {
		hs = append(hs, store.Handle{Type: store.LedgerKeys, Name: n})
	}
	seen := map[store.Handle]bool{}
	return slices.DeleteFunc(hs, func(h store.Handle) bool {
		dup := seen[h]
		seen[h] = true
		return dup
	})
}

// sameForm reports whether kinds a and b share a form of name (the
// content-addressed kinds and keys; entries and checkpoints), so that a
// name of one is a valid name of the other.
func sameForm(a, b store.FileType) bool {
	form := func(t store.FileType) int {
		switch t {
		case store.Keys, store.Packs, store.Index, store.Snapshots, store.LedgerRemovals:
			return 1
		case store.LedgerEntries, store.LedgerCheckpoints:
			return 2
		}
		return 0
	}
	return form(a) != 0 && form(a) == form(b)
}
