package s3

import (
	"strings"
	"testing"
	"time"
)

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in   string
		want Location
		str  string // String(), when it differs from in
	}{
		{in: "s3://s3.amazonaws.com/bucket", want: Location{Endpoint: "s3.amazonaws.com", Bucket: "bucket"}},
		{in: "s3:https://s3.amazonaws.com/bucket/", want: Location{Endpoint: "s3.amazonaws.com", Bucket: "bucket"},
			str: "s3://s3.amazonaws.com/bucket"},
		{in: "s3:http://127.0.0.1:9000/b-1/a/b.c_d-e",
			want: Location{Endpoint: "127.0.0.1:9000", Insecure: true, Bucket: "b-1", Prefix: "a/b.c_d-e"},
			str:  "s3:http://127.0.0.1:9000/b-1/a/b.c_d-e"},
		{in: "s3://[::1]:9000/bucket/p", want: Location{Endpoint: "[::1]:9000", Bucket: "bucket", Prefix: "p"}},
		{in: "s3://minio.example.org/backups/host1?retention=90d&lock=governance&region=eu-west-1",
			want: Location{Endpoint: "minio.example.org", Bucket: "backups", Prefix: "host1",
				Region: "eu-west-1", Retention: 90 * day, Mode: Governance},
			str: "s3://minio.example.org/backups/host1?region=eu-west-1&retention=90d&lock=governance"},
		{in: "s3://h/bucket?retention=36h", want: Location{Endpoint: "h", Bucket: "bucket", Retention: 36 * time.Hour},
			str: "s3://h/bucket?retention=36h0m0s"},
		{in: "s3://h/bucket?retention=48h", want: Location{Endpoint: "h", Bucket: "bucket", Retention: 2 * day},
			str: "s3://h/bucket?retention=2d"},
		{in: "s3://h/bucket?lock=compliance", want: Location{Endpoint: "h", Bucket: "bucket", Mode: Compliance}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLocation(tt.in)
			if err != nil {
				t.Fatalf("ParseLocation: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ParseLocation = %+v, want %+v", got, tt.want)
			}
			want := tt.str
			if want == "" {
				want = tt.in
			}
			if s := got.String(); s != want {
				t.Fatalf("String() = %q, want %q", s, want)
			}
		})
	}
}

func TestParseLocationErrors(t *testing.T) {
	tests := []struct {
		in, want string // want: a part of the error message
	}{
		{"/srv/repo", `start with "s3:"`},
		{"s3:bucket/prefix", "want s3://HOST"},
		{"s3:ftp://h/bucket", "want s3://HOST"},
		{"s3://user:hunter2@h/bucket", "credentials do not belong"},
		{"s3:http://AKIA:hunter2@h:9000/bucket", "credentials do not belong"},
		{"s3:///bucket", "no host"},
		{"s3://h", "bucket"},
		{"s3://h/", "bucket"},
		{"s3://h/B", "bucket"},
		{"s3://h/ab", "bucket"},
		{"s3://h:0/bucket", "port"},
		{"s3://h:70000/bucket", "port"},
		{"s3://h:x/bucket", "port"},
		{"s3://h_x/bucket", "host"},
		{"s3://h/bucket//p", "prefix"},
		{"s3://h/bucket/../p", "prefix"},
		{"s3://h/bucket/a*b", "prefix"},
		{"s3://h/bucket/a b", "prefix"},
		{"s3://h/bucket/a%2Fb", "escaped"},
		{"s3://h/bucket#x", "fragment"},
		{"s3://h/bucket?retention=0d", "retention"},
		{"s3://h/bucket?retention=-1h", "retention"},
		{"s3://h/bucket?retention=1.5d", "retention"},
		{"s3://h/bucket?retention=99999d", "retention"},
		{"s3://h/bucket?retention=1d&retention=2d", "2 times"},
		{"s3://h/bucket?lock=none", "lock"},
		{"s3://h/bucket?region=EU", "region"},
		{"s3://h/bucket?password=x", "unknown option"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseLocation(tt.in)
			if err == nil {
				t.Fatalf("ParseLocation accepted %q", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseLocation error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("ParseLocation error %q repeats a secret", err)
			}
		})
	}
}

// FuzzParseLocation checks that ParseLocation never panics, never echoes
// what follows an '@', and that every location it accepts prints to a form
// it reads back to the same value.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"s3://s3.amazonaws.com/bucket/prefix",
		"s3:http://127.0.0.1:9000/bucket/a/b?retention=30d&lock=compliance",
		"s3:https://[::1]:443/bucket?region=us-east-1&retention=1h",
		"s3://u:p@h/bucket",
		"s3://h/bucket/../x?x=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLocation(s)
		if err != nil {
			return
		}
		again, err := ParseLocation(l.String())
		if err != nil {
			t.Fatalf("ParseLocation(%q) = %+v, whose String %q does not parse: %v", s, l, l.String(), err)
		}
		if again != l {
			t.Fatalf("ParseLocation(%q) = %+v, but its String %q parses to %+v", s, l, l.String(), again)
		}
	})
}
