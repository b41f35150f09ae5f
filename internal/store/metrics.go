package store

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads the pool's statistics at each scrape.
type poolCollector struct{ pool *pgxpool.Pool }

var (
	poolConns = prometheus.NewDesc("db_pool_connections",
		"Connections of the database pool, by state: in_use (acquired), idle, constructing.", []string{"state"}, nil)
	poolTotal = prometheus.NewDesc("db_pool_open_connections",
		"Open connections of the database pool (in use, idle and being established).", nil, nil)
	poolMax = prometheus.NewDesc("db_pool_max_connections",
		"Most connections the pool opens (DB_MAX_CONNS).", nil, nil)
	poolAcquires = prometheus.NewDesc("db_pool_acquires_total",
		"Connections acquired from the pool.", nil, nil)
	poolAcquireSeconds = prometheus.NewDesc("db_pool_acquire_seconds_total",
		"Time spent acquiring connections from the pool.", nil, nil)
	poolWaits = prometheus.NewDesc("db_pool_acquire_waits_total",
		"Acquires that had to wait for a connection: none was idle.", nil, nil)
	poolWaitSeconds = prometheus.NewDesc("db_pool_acquire_wait_seconds_total",
		"Time acquires spent waiting for a connection when none was idle.", nil, nil)
	poolCanceled = prometheus.NewDesc("db_pool_acquires_canceled_total",
		"Acquires given up because their request ended or timed out.", nil, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConns, poolTotal, poolMax, poolAcquires, poolAcquireSeconds, poolWaits, poolWaitSeconds, poolCanceled} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(poolConns, gauge, float64(s.AcquiredConns()), "in_use")
	ch <- prometheus.MustNewConstMetric(poolConns, gauge, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolConns, gauge, float64(s.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolTotal, gauge, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolMax, gauge, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, counter, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolAcquireSeconds, counter, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(poolWaits, counter, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWaitSeconds, counter, s.EmptyAcquireWaitTime().Seconds())
	ch <- prometheus.MustNewConstMetric(poolCanceled, counter, float64(s.CanceledAcquireCount()))
}
