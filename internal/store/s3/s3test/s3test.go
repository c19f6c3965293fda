// Package s3test connects tests to the S3 test server (MinIO with Object
// Lock, started by scripts/minio.sh, around go test by scripts/test.sh),
// so that every package's S3 tests find it, skip without it and fail
// without it in CI the same way.
package s3test

import (
	"net/url"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is the S3 test server named by KALAJA_TEST_S3_ENDPOINT.
type Server struct {
	// Endpoint is KALAJA_TEST_S3_ENDPOINT as given (http://HOST:PORT).
	Endpoint string
	// URL is Endpoint parsed.
	URL *url.URL
	// Creds are the test credentials, from AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY (which kalaja reads too).
	Creds *credentials.Credentials
	// Client is a client with Creds.
	Client *minio.Client
}

// Open returns the S3 test server. Without one the test is skipped, or
// fails when CI is set: CI must run the S3 tests.
func Open(t testing.TB) *Server {
	t.Helper()
	raw := os.Getenv("KALAJA_TEST_S3_ENDPOINT")
	if raw == "" {
		msg := "no S3 test server: run eval \"$(scripts/minio.sh start)\" first (scripts/test.sh does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; in CI the S3 tests must run")
		}
		t.Skip(msg)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("KALAJA_TEST_S3_ENDPOINT=%q: want http://HOST:PORT", raw)
	}
	creds := credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "")
	c, err := minio.New(u.Host, &minio.Options{Creds: creds, Secure: u.Scheme == "https"})
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Endpoint: raw, URL: u, Creds: creds, Client: c}
}
