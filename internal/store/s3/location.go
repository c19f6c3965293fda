package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Object Lock retention modes (docs/design.md, "S3 storage").
const (
	// Compliance retention cannot be shortened or lifted by anyone,
	// including the bucket's administrator, until it ends.
	Compliance = "compliance"
	// Governance retention can be lifted by a credential holding the
	// s3:BypassGovernanceRetention permission.
	Governance = "governance"
)

// DefaultRetention is how long each object is locked when the location
// names no retention.
const DefaultRetention = 30 * 24 * time.Hour

// maxRetention bounds retention so that retain-until dates stay far from
// the limits of time.Time and of servers.
const maxRetention = 100 * 365 * 24 * time.Hour

const day = 24 * time.Hour

// Location names an S3 repository: an endpoint, a bucket, a key prefix,
// and how objects are locked. Its text form is
//
//	s3://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]        HTTPS
//	s3:https://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]  HTTPS
//	s3:http://HOST[:PORT]/BUCKET[/PREFIX][?OPTIONS]   plain HTTP
//
// with OPTIONS among retention=DURATION (a Go duration or a whole number
// of days such as 30d), lock=compliance|governance, and region=NAME.
// Credentials never appear in a location.
type Location struct {
	// Endpoint is host[:port].
	Endpoint string
	// Insecure selects plain HTTP instead of HTTPS.
	Insecure bool
	// Bucket is the bucket's name.
	Bucket string
	// Prefix is prepended to every object key with a slash; empty for the
	// bucket's root. It has no leading or trailing slash.
	Prefix string
	// Region is the bucket's region; empty lets the client find it.
	Region string
	// Retention is how long each saved object is locked; zero means
	// DefaultRetention.
	Retention time.Duration
	// Mode is Compliance or Governance; empty means Compliance.
	Mode string
}

// IsLocation reports whether s is meant as an S3 location (it starts with
// "s3:"); ParseLocation says whether it is a valid one.
func IsLocation(s string) bool { return strings.HasPrefix(s, "s3:") }

// ParseLocation parses the text form described at Location. Its errors do
// not repeat s, which could hold a secret pasted by mistake.
func ParseLocation(s string) (Location, error) {
	if !IsLocation(s) {
		return Location{}, errors.New(`invalid S3 location: it must start with "s3:"`)
	}
	rest := s[len("s3:"):]
	var l Location
	switch {
	case strings.HasPrefix(rest, "//"):
		rest = "https:" + rest
	case strings.HasPrefix(rest, "https://"):
	case strings.HasPrefix(rest, "http://"):
		l.Insecure = true
	default:
		return Location{}, errors.New("invalid S3 location: want s3://HOST/BUCKET[/PREFIX], s3:https://HOST/BUCKET[/PREFIX] or s3:http://HOST/BUCKET[/PREFIX]")
	}
	u, err := url.Parse(rest)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Location{}, fmt.Errorf("invalid S3 location: %w", err)
	}
	switch {
	case u.User != nil:
		return Location{}, errors.New("invalid S3 location: credentials do not belong in it; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case u.Host == "" || u.Opaque != "":
		return Location{}, errors.New("invalid S3 location: no host")
	case u.Fragment != "" || strings.Contains(rest, "#"):
		return Location{}, errors.New("invalid S3 location: it has a #fragment")
	}
	if err := checkHost(u.Host); err != nil {
		return Location{}, err
	}
	l.Endpoint = u.Host
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return Location{}, fmt.Errorf("invalid S3 location: bucket %q: %w", bucket, err)
	}
	l.Bucket = bucket
	l.Prefix = strings.TrimSuffix(prefix, "/")
	if err := checkPrefix(l.Prefix); err != nil {
		return Location{}, err
	}
	if u.RawPath != "" {
		return Location{}, errors.New("invalid S3 location: escaped characters in the path")
	}
	if err := l.parseQuery(u.RawQuery); err != nil {
		return Location{}, fmt.Errorf("invalid S3 location: %w", err)
	}
	return l, nil
}

// checkHost accepts host names, IPv4 and bracketed IPv6 addresses, with an
// optional port.
func checkHost(host string) error {
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("invalid S3 location: port %q", port)
		}
	}
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		name = name[1 : len(name)-1]
		if name == "" || strings.Trim(name, "0123456789abcdefABCDEF:.") != "" {
			return fmt.Errorf("invalid S3 location: host %q", host)
		}
		return nil
	}
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
		return fmt.Errorf("invalid S3 location: host %q", host)
	}
	return nil
}

// checkPrefix accepts slash-separated segments of letters, digits, '.',
// '_' and '-', none of them "." or "..".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	for seg := range strings.SplitSeq(prefix, "/") {
		if seg == "" || seg == "." || seg == ".." ||
			strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("invalid S3 location: prefix %q: segments are letters, digits, '.', '_' and '-'", prefix)
		}
	}
	return nil
}

func (l *Location) parseQuery(raw string) error {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return fmt.Errorf("option %q given %d times", k, len(v))
		}
		switch val := v[0]; k {
		case "retention":
			d, err := parseRetention(val)
			if err != nil {
				return err
			}
			l.Retention = d
		case "lock":
			if val != Compliance && val != Governance {
				return fmt.Errorf("lock=%q: want %s or %s", val, Compliance, Governance)
			}
			l.Mode = val
		case "region":
			if val == "" || strings.Trim(val, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
				return fmt.Errorf("region=%q: want lowercase letters, digits and '-'", val)
			}
			l.Region = val
		default:
			return fmt.Errorf("unknown option %q (known: retention, lock, region)", k)
		}
	}
	return nil
}

// parseRetention accepts a whole number of days ("30d") or a positive Go
// duration ("36h", "90m") up to maxRetention.
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 32)
		if err != nil || n[0] == '+' || days > uint64(maxRetention/day) {
			return 0, fmt.Errorf("retention=%q: want a number of days such as 30d, at most %dd", s, maxRetention/day)
		}
		d = time.Duration(days) * day
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("retention=%q: want a number of days such as 30d, or a duration such as 36h", s)
		}
	}
	if d < time.Second || d > maxRetention {
		return 0, fmt.Errorf("retention=%q: want at least 1s and at most %dd", s, maxRetention/day)
	}
	return d, nil
}

// String returns the location's text form, which ParseLocation reads back
// to an equal Location.
func (l Location) String() string {
	var b strings.Builder
	b.WriteString("s3:")
	if l.Insecure {
		b.WriteString("http:")
	}
	b.WriteString("//" + l.Endpoint + "/" + l.Bucket)
	if l.Prefix != "" {
		b.WriteString("/" + l.Prefix)
	}
	var opts []string
	if l.Region != "" {
		opts = append(opts, "region="+l.Region)
	}
	if l.Retention != 0 {
		r := l.Retention.String()
		if l.Retention%day == 0 {
			r = fmt.Sprintf("%dd", l.Retention/day)
		}
		opts = append(opts, "retention="+r)
	}
	if l.Mode != "" {
		opts = append(opts, "lock="+l.Mode)
	}
	if len(opts) > 0 {
		b.WriteString("?" + strings.Join(opts, "&"))
	}
	return b.String()
}
