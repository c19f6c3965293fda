package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of their own
// (docs/design.md, "Server API (version 1)").
type metrics struct {
	reg          *prometheus.Registry
	objects      *prometheus.GaugeVec
	bytes        *prometheus.GaugeVec
	refused      *prometheus.CounterVec
	hostBytes    *prometheus.GaugeVec
	lastSnapshot *prometheus.GaugeVec
	admin        *prometheus.CounterVec
	deleted      *prometheus.CounterVec
	renewed      prometheus.Counter
	renewals     *prometheus.CounterVec
	lastRenewal  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kalaja_server_objects",
			Help: "Objects in the repository, by kind: counted at start, then increased by every object stored.",
		}, []string{"kind"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kalaja_server_bytes",
			Help: "Bytes in the repository, by kind: counted at start, then increased by every object stored.",
		}, []string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kalaja_server_refused_requests_total",
			Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		hostBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kalaja_server_host_bytes",
			Help: "Bytes of the objects each host created (what its quota counts).",
		}, []string{"host"}),
		lastSnapshot: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kalaja_server_host_last_snapshot_timestamp_seconds",
			Help: "Server time at which each host last stored a snapshot object, in Unix seconds.",
		}, []string{"host"}),
		admin: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kalaja_server_admin_requests_total",
			Help: "Signed administrator requests, by result: accepted or refused.",
		}, []string{"result"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kalaja_server_deleted_objects_total",
			Help: "Objects deleted by administrator requests, by kind.",
		}, []string{"kind"}),
		renewed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kalaja_server_renewed_objects_total",
			Help: "Objects whose retention in the backend (S3 Object Lock) the server extended.",
		}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kalaja_server_renewals_total",
			Help: "Passes over the backend's objects to extend their retention, by result: done or failed.",
		}, []string{"result"}),
		lastRenewal: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kalaja_server_last_renewal_timestamp_seconds",
			Help: "Server time at which the last renewal pass ended without error, in Unix seconds.",
		}),
	}
	m.reg.MustRegister(m.objects, m.bytes, m.refused, m.hostBytes, m.lastSnapshot, m.admin, m.deleted,
		m.renewed, m.renewals, m.lastRenewal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{reasonUnauthorized, reasonForbidden, reasonBadRequest, reasonNotFound, reasonMethod, reasonExists,
		reasonHash, reasonTooLarge, reasonLength, reasonQuota, reasonRange, reasonAdminNoKey, reasonAdminSignature,
		reasonAdminMalformed, reasonAdminServer, reasonAdminExpired, reasonAdminReplay} {
		m.refused.WithLabelValues(r)
	}
	m.admin.WithLabelValues("accepted")
	m.admin.WithLabelValues("refused")
	m.renewals.WithLabelValues("done")
	m.renewals.WithLabelValues("failed")
	return m
}

// host publishes a host's counters.
func (m *metrics) host(name string, u hostUsage) {
	m.hostBytes.WithLabelValues(name).Set(float64(u.Bytes))
	if !u.LastSnapshot.IsZero() {
		m.lastSnapshot.WithLabelValues(name).Set(unixSeconds(u.LastSnapshot))
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
