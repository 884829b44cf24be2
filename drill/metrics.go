package drill

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Drill metrics, registered next to restore-run's own (package metrics) and
// exported the same ways: --metrics-addr, --metrics-textfile, --metrics-push.
// Alert on restore_run_drill_last_success_timestamp_seconds getting old, on
// restore_run_drill_passed == 0, and on an RTO above its objective
// (docs/drills.md).
const (
	MetricRuns              = "restore_run_drill_runs_total"
	MetricLastRun           = "restore_run_drill_last_run_timestamp_seconds"
	MetricLastSuccess       = "restore_run_drill_last_success_timestamp_seconds"
	MetricPassed            = "restore_run_drill_passed"
	MetricDuration          = "restore_run_drill_duration_seconds"
	MetricRTO               = "restore_run_drill_rto_seconds"
	MetricRTOObjective      = "restore_run_drill_rto_objective_seconds"
	MetricRestorePassed     = "restore_run_drill_restore_passed"
	MetricRestoreRTO        = "restore_run_drill_restore_rto_seconds"
	MetricRestoreObjective  = "restore_run_drill_restore_rto_objective_seconds"
	MetricRestorePhase      = "restore_run_drill_restore_phase_seconds"
	MetricRestoreLastPassed = "restore_run_drill_restore_last_success_timestamp_seconds"
)

// Metrics are the drill metrics. They implement Exporter.
type Metrics struct {
	runs        *prometheus.CounterVec
	lastRun     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	passed      *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	rto         *prometheus.GaugeVec
	rtoObj      *prometheus.GaugeVec
	rPassed     *prometheus.GaugeVec
	rRTO        *prometheus.GaugeVec
	rObj        *prometheus.GaugeVec
	rPhase      *prometheus.GaugeVec
	rLast       *prometheus.GaugeVec
	carried     *carriedCollector
	byName      map[string]prometheus.Collector
	help        map[string]string
}

var _ Exporter = (*Metrics)(nil)

// NewMetrics registers the drill metrics in reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	helps := map[string]string{}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		helps[name] = help
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	runsHelp := "Drills run, by drill and result (passed, failed, error, interrupted)."
	helps[MetricRuns] = runsHelp
	m := &Metrics{
		help:        helps,
		runs:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRuns, Help: runsHelp}, []string{"drill", "result"}),
		lastRun:     gauge(MetricLastRun, "Unix time when the drill last ended, whatever its result.", "drill"),
		lastSuccess: gauge(MetricLastSuccess, "Unix time when the drill last passed: every restore as expected, within every objective.", "drill"),
		passed:      gauge(MetricPassed, "1 if the drill's last run passed, else 0.", "drill"),
		duration:    gauge(MetricDuration, "How long the drill's last run took, teardown included.", "drill"),
		rto:         gauge(MetricRTO, "The drill's last recovery time: from its start until its last restore was validated.", "drill"),
		rtoObj:      gauge(MetricRTOObjective, "The drill's RTO objective.", "drill"),
		rPassed:     gauge(MetricRestorePassed, "1 if the restore passed in the drill's last run, else 0.", "drill", "restore", "driver"),
		rRTO:        gauge(MetricRestoreRTO, "The restore's recovery time in the drill's last run (start to validated).", "drill", "restore", "driver"),
		rObj:        gauge(MetricRestoreObjective, "The restore's RTO objective.", "drill", "restore", "driver"),
		rPhase:      gauge(MetricRestorePhase, "How long each phase of the restore took in the drill's last run.", "drill", "restore", "phase"),
		rLast:       gauge(MetricRestoreLastPassed, "Unix time when the restore last passed in a drill.", "drill", "restore", "driver"),
		carried:     &carriedCollector{},
	}
	m.byName = map[string]prometheus.Collector{
		MetricRuns: m.runs, MetricLastRun: m.lastRun, MetricLastSuccess: m.lastSuccess, MetricPassed: m.passed,
		MetricDuration: m.duration, MetricRTO: m.rto, MetricRTOObjective: m.rtoObj, MetricRestorePassed: m.rPassed,
		MetricRestoreRTO: m.rRTO, MetricRestoreObjective: m.rObj, MetricRestorePhase: m.rPhase, MetricRestoreLastPassed: m.rLast,
	}
	for _, c := range []prometheus.Collector{m.runs, m.lastRun, m.lastSuccess, m.passed, m.duration, m.rto, m.rtoObj, m.rPassed, m.rRTO, m.rObj, m.rPhase, m.rLast, m.carried} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// DrillEnd records a drill's outcome.
func (m *Metrics) DrillEnd(rep *Report) {
	now := float64(time.Now().UnixNano()) / 1e9
	name := rep.Drill
	m.runs.WithLabelValues(name, rep.Result).Inc()
	m.lastRun.WithLabelValues(name).Set(now)
	m.duration.WithLabelValues(name).Set(rep.DurationSeconds)
	if rep.Result == Passed {
		m.passed.WithLabelValues(name).Set(1)
		m.lastSuccess.WithLabelValues(name).Set(now)
	} else {
		m.passed.WithLabelValues(name).Set(0)
	}
	if rep.RTOSeconds > 0 {
		m.rto.WithLabelValues(name).Set(rep.RTOSeconds)
	}
	if rep.RTOObjective != nil {
		m.rtoObj.WithLabelValues(name).Set(*rep.RTOObjective)
	}
	for _, r := range rep.Restores {
		driver, _, _ := strings.Cut(r.Driver, "@")
		if r.Passed {
			m.rPassed.WithLabelValues(name, r.Name, driver).Set(1)
			m.rLast.WithLabelValues(name, r.Name, driver).Set(now)
		} else {
			m.rPassed.WithLabelValues(name, r.Name, driver).Set(0)
		}
		if r.RTOSeconds > 0 {
			m.rRTO.WithLabelValues(name, r.Name, driver).Set(r.RTOSeconds)
		}
		if r.RTOObjective != nil {
			m.rObj.WithLabelValues(name, r.Name, driver).Set(*r.RTOObjective)
		}
		phases := map[string]float64{}
		for _, p := range r.Phases {
			phases[p.Name] += p.DurationSeconds
		}
		for p, v := range phases {
			m.rPhase.WithLabelValues(name, r.Name, p).Set(v)
		}
	}
}

// SeedFromTextfile carries the drill series of an earlier textfile at path (a
// missing file is no error) into the file this run writes: the runs counter of
// drill goes on from its old value, its last success time and each restore's
// stay when this run does not pass, and every series of other drills sharing the
// file is kept as it was.
func (m *Metrics) SeedFromTextfile(path, drill string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		return fmt.Errorf("%s: %v (it is rewritten from this run's metrics)", path, err)
	}
	for name, fam := range fams {
		if _, ours := m.byName[name]; !ours {
			continue
		}
		for _, mt := range fam.Metric {
			labels := prometheus.Labels{}
			for _, lp := range mt.Label {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["drill"] != drill {
				m.carried.add(fam, mt, m.help[name])
				continue
			}
			switch name {
			case MetricRuns:
				if c, err := m.runs.GetMetricWith(labels); err == nil && mt.Counter != nil {
					c.Add(mt.Counter.GetValue())
				}
			case MetricLastSuccess, MetricRestoreLastPassed:
				if g, err := m.byName[name].(*prometheus.GaugeVec).GetMetricWith(labels); err == nil && mt.Gauge != nil {
					g.Set(mt.Gauge.GetValue())
				}
			}
		}
	}
	return nil
}

// carriedCollector re-exports series of other drills read from a textfile.
type carriedCollector struct {
	metrics []prometheus.Metric
}

func (c *carriedCollector) add(fam *dto.MetricFamily, mt *dto.Metric, help string) {
	var names, values []string
	for _, lp := range mt.Label {
		names = append(names, lp.GetName())
		values = append(values, lp.GetValue())
	}
	desc := prometheus.NewDesc(fam.GetName(), help, names, nil)
	var (
		pm  prometheus.Metric
		err error
	)
	switch {
	case mt.Counter != nil:
		pm, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, mt.Counter.GetValue(), values...)
	case mt.Gauge != nil:
		pm, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, mt.Gauge.GetValue(), values...)
	default:
		return
	}
	if err == nil {
		c.metrics = append(c.metrics, pm)
	}
}

// Describe sends nothing: the collector is unchecked (its series are only known
// once a textfile is read).
func (c *carriedCollector) Describe(chan<- *prometheus.Desc) {}

func (c *carriedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.metrics {
		ch <- m
	}
}
