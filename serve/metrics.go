package serve

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, registered on a registry of
// its own so that several servers (tests) do not collide.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // by endpoint and status code
	errors    *prometheus.CounterVec   // by cause
	latency   *prometheus.HistogramVec // by endpoint
	inflight  prometheus.Gauge         // chains admitted and not finished
	queue     *prometheus.GaugeVec     // score calls waiting for a batch, by model
	batchSize *prometheus.HistogramVec // chains per model call formed, by model
	evals     *prometheus.CounterVec   // per-sample score evaluations, by model
}

// modelMetrics are one model's series.
type modelMetrics struct {
	queue     prometheus.Gauge
	batchSize prometheus.Observer
	evals     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebmrun_requests_total",
			Help: "HTTP requests answered, by endpoint and status code."}, []string{"endpoint", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebmrun_errors_total",
			Help: "Requests that failed, by cause: bad_request, not_found, unauthorized, overload, timeout, canceled, divergence, internal."}, []string{"cause"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ebmrun_request_seconds",
			Help: "Time to answer a request, by endpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"endpoint"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ebmrun_inflight_chains",
			Help: "Chains (samples being drawn, points being scored) admitted and not finished."}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ebmrun_queue_depth",
			Help: "Score calls waiting to be merged into a model call, by model."}, []string{"model"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ebmrun_batch_size",
			Help: "Chains per model call formed by the dynamic batcher, by model.", Buckets: prometheus.ExponentialBuckets(1, 2, 14)}, []string{"model"}),
		evals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ebmrun_evaluations_total",
			Help: "Per-sample score evaluations; its rate is evaluations per second."}, []string{"model"}),
	}
	m.reg.MustRegister(m.requests, m.errors, m.latency, m.inflight, m.queue, m.batchSize, m.evals,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) model(name string) *modelMetrics {
	return &modelMetrics{queue: m.queue.WithLabelValues(name), batchSize: m.batchSize.WithLabelValues(name),
		evals: m.evals.WithLabelValues(name)}
}
