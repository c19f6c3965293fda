package server

import (
	"bytes"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"testing"

	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

// TestNamesAsStores checks that the server accepts exactly the handles
// every store accepts: each of storetest.ValidHandles, and none of the
// attack table storetest.InvalidHandles, which every store also refuses
// (its conformance suite).
func TestNamesAsStores(t *testing.T) {
	t.Run("parse", func(t *testing.T) {
		methods := []string{http.MethodGet, http.MethodHead, http.MethodPut}
		for _, h := range storetest.ValidHandles() {
			for _, m := range methods {
				req, err := parseRequest(m, objectPath(h))
				if err != nil || req.h != h || req.op == opList {
					t.Errorf("%s %q = %+v, %v; want the object %q/%q", m, objectPath(h), req, err, h.Type, h.Name)
				}
			}
		}
		for _, h := range storetest.InvalidHandles() {
			for _, m := range methods {
				path := prefix + string(h.Type) + "/" + h.Name
				req, err := parseRequest(m, path)
				var ref *refusal
				switch {
				case h.Name == "" && (err != nil || req.op == opList):
					// "KIND/" is the listing, never an object.
				case err == nil:
					t.Errorf("%s %q accepted as %+v", m, path, req)
				case !errors.As(err, &ref) || ref.status != http.StatusBadRequest && ref.status != http.StatusNotFound:
					t.Errorf("%s %q = %v, want a 400 or 404 refusal", m, path, err)
				}
			}
		}
	})
	t.Run("http", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.SkipContentChecks = true })
		want := map[store.FileType]map[string]int64{}
		for _, h := range storetest.ValidHandles() {
			body := []byte(h.String())
			if w := f.do(http.MethodPut, objectPath(h), body); w.Code != http.StatusCreated {
				t.Errorf("PUT %s: %d %s", objectPath(h), w.Code, w.Body)
				continue
			}
			if w := f.do(http.MethodGet, objectPath(h), nil); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), body) {
				t.Errorf("GET %s: %d %q", objectPath(h), w.Code, w.Body)
			}
			if h.Type != store.Config {
				if want[h.Type] == nil {
					want[h.Type] = map[string]int64{}
				}
				want[h.Type][h.Name] = int64(len(body))
			}
		}
		for _, h := range storetest.InvalidHandles() {
			if h.Name == "" {
				continue // the listing
			}
			// As a client would send it: escaped where a URL needs it.
			path := (&url.URL{Path: prefix + string(h.Type) + "/" + h.Name}).EscapedPath()
			for _, m := range []string{http.MethodPut, http.MethodGet, http.MethodHead} {
				w := f.do(m, path, []byte("planted"))
				if w.Code != http.StatusBadRequest && w.Code != http.StatusNotFound {
					t.Errorf("%s %s: %d %s, want 400 or 404", m, path, w.Code, w.Body)
				}
			}
		}
		for _, ft := range store.Listable {
			got := map[string]int64{}
			if err := f.st.List(t.Context(), ft, func(fi store.FileInfo) error {
				got[fi.Name] = fi.Size
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, want[ft]) && len(got)+len(want[ft]) > 0 {
				t.Errorf("%s holds %v, want %v", ft, got, want[ft])
			}
		}
	})
}
