package server

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// dashboardPath is the path the dashboard is served under; the dashboard
// handler sees the rest of the path, starting with "/".
const dashboardPath = "/dashboard"

// dashboardRealm is the realm of the Basic challenge on the dashboard.
const dashboardRealm = `Basic realm="kalaja dashboard", charset="UTF-8"`

// isDashboard reports whether path is under the dashboard.
func isDashboard(path string) bool {
	return path == dashboardPath || strings.HasPrefix(path, dashboardPath+"/")
}

// presented is a credential as a request presents it.
type presented struct {
	token string
	user  string // the Basic user name; "" with Bearer
	basic bool
}

// parseAuthorization reads the Authorization header: "Bearer TOKEN", or "Basic"
// with base64 "USER:TOKEN". It returns false for a missing or malformed
// header.
func parseAuthorization(header string) (presented, bool) {
	scheme, rest, ok := strings.Cut(header, " ")
	switch {
	case !ok:
		return presented{}, false
	case strings.EqualFold(scheme, "Bearer"):
		token, ok := bearer(header)
		return presented{token: token}, ok
	case strings.EqualFold(scheme, "Basic") && len(rest) <= 2*maxToken:
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return presented{}, false
		}
		user, token, ok := strings.Cut(string(b), ":")
		if !ok || user == "" || token == "" || len(token) > maxToken {
			return presented{}, false
		}
		return presented{token: token, user: user, basic: true}, true
	}
	return presented{}, false
}

// lookup returns the credential r presents, of either role. With Basic,
// the user name must be the credential's name. It fails with a 401
// refusal when r presents no credential the tokens file holds.
func (s *Server) lookup(r *http.Request) (Credential, presented, error) {
	p, ok := parseAuthorization(r.Header.Get("Authorization"))
	if !ok {
		return Credential{}, p, refuse(http.StatusUnauthorized, reasonUnauthorized, "missing or malformed credential")
	}
	c, ok, err := s.tokens.Lookup(p.token)
	if err != nil {
		return Credential{}, p, err
	}
	if !ok || (p.basic && p.user != c.Name) {
		return Credential{}, p, refuse(http.StatusUnauthorized, reasonUnauthorized, "unknown credential")
	}
	return c, p, nil
}

// refuseDashboardCredential refuses, with 403, a request under /v1/ that
// presents a dashboard credential: it may read the dashboard and nothing
// else, even where the API asks for no token (/v1/admin).
func (s *Server) refuseDashboardCredential(r *http.Request) error {
	if r.Header.Get("Authorization") == "" {
		return nil
	}
	c, _, err := s.lookup(r)
	if err == nil && c.Role == RoleDashboard {
		return refuse(http.StatusForbidden, reasonForbidden, "a dashboard credential cannot use the API")
	}
	return nil
}

// serveDashboard authenticates a dashboard credential and hands the
// request to the dashboard. It returns the credential's name.
func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) (string, error) {
	if s.dashboard == nil {
		return "", refuse(http.StatusNotFound, reasonNotFound, "no dashboard on this server")
	}
	c, _, err := s.lookup(r)
	if err != nil {
		return "", err
	}
	if c.Role != RoleDashboard {
		return c.Name, refuse(http.StatusForbidden, reasonForbidden, "a host token cannot read the dashboard: use a dashboard credential (kalaja serve token add --dashboard NAME)")
	}
	http.StripPrefix(dashboardPath, s.dashboard).ServeHTTP(w, r)
	return c.Name, nil
}
