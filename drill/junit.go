package drill

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// JUnit XML, as CI systems (Jenkins, GitLab, GitHub test reporters) read it: one
// test suite per drill, one test case per restore (its checks as properties and
// in its output, a failure naming every check that failed), one test case for
// the drill's own objective and checks, and an error test case when the script
// failed.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name       string          `xml:"name,attr"`
	Classname  string          `xml:"classname,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Failure    *junitFailure   `xml:"failure,omitempty"`
	Error      *junitFailure   `xml:"error,omitempty"`
	SystemOut  *junitText      `xml:"system-out,omitempty"`
}

type junitText struct {
	Text string `xml:",cdata"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

// JUnit renders the drill's report as JUnit XML.
func JUnit(rep *Report) ([]byte, error) {
	class := "drill." + rep.Drill
	suite := junitSuite{
		Name: class, Time: fmt.Sprintf("%.3f", rep.DurationSeconds), Timestamp: rep.Start.Format("2006-01-02T15:04:05"),
		Hostname: rep.Host,
		Properties: []junitProperty{
			{"drill.file", rep.File}, {"drill.sha256", rep.SHA256}, {"drill.result", rep.Result},
			{"drill.rto_seconds", fmt.Sprintf("%.3f", rep.RTOSeconds)},
		},
	}
	if rep.RTOObjective != nil {
		suite.Properties = append(suite.Properties, junitProperty{"drill.rto_objective_seconds", fmt.Sprintf("%.3f", *rep.RTOObjective)})
	}
	for _, r := range rep.Restores {
		tc := junitCase{
			Name:      fmt.Sprintf("%s (%s: %s -> %s)", r.Name, r.Driver, r.Snapshot, r.Target),
			Classname: class, Time: fmt.Sprintf("%.3f", r.EndSeconds-r.StartSeconds),
			Properties: []junitProperty{
				{"result", r.Result}, {"rto_seconds", fmt.Sprintf("%.3f", r.RTOSeconds)},
			},
		}
		if r.RTOObjective != nil {
			tc.Properties = append(tc.Properties, junitProperty{"rto_objective_seconds", fmt.Sprintf("%.3f", *r.RTOObjective)})
		}
		for _, p := range r.Phases {
			tc.Properties = append(tc.Properties, junitProperty{"phase." + p.Name + "_seconds", fmt.Sprintf("%.3f", p.DurationSeconds)})
		}
		var out, failed []string
		for _, c := range r.Checks {
			out = append(out, checkLine(c))
			tc.Properties = append(tc.Properties, junitProperty{"check." + c.Kind + ": " + c.Name, passFail(c.OK)})
			if !c.OK {
				failed = append(failed, checkLine(c))
			}
		}
		for _, ev := range r.Events {
			line := fmt.Sprintf("at %s: %s", secs(ev.AtSeconds), ev.What)
			if ev.Error != "" {
				line += ": " + ev.Error
			}
			out = append(out, line)
		}
		tc.SystemOut = &junitText{strings.Join(out, "\n")}
		suite.Tests++
		if !r.Passed {
			suite.Failures++
			msg := fmt.Sprintf("%d of %d checks failed", len(failed), len(r.Checks))
			if len(failed) > 0 {
				msg += ": " + strings.TrimPrefix(failed[0], "FAIL ")
			}
			tc.Failure = &junitFailure{Message: msg, Type: "drill", Text: strings.Join(failed, "\n")}
		}
		suite.Cases = append(suite.Cases, tc)
	}
	if len(rep.Checks) > 0 {
		tc := junitCase{Name: "drill objectives and checks", Classname: class, Time: fmt.Sprintf("%.3f", rep.RTOSeconds)}
		var out, failed []string
		for _, c := range rep.Checks {
			out = append(out, checkLine(c))
			tc.Properties = append(tc.Properties, junitProperty{"check." + c.Kind + ": " + c.Name, passFail(c.OK)})
			if !c.OK {
				failed = append(failed, checkLine(c))
			}
		}
		tc.SystemOut = &junitText{strings.Join(out, "\n")}
		suite.Tests++
		if len(failed) > 0 {
			suite.Failures++
			tc.Failure = &junitFailure{Message: strings.TrimPrefix(failed[0], "FAIL "), Type: "objective", Text: strings.Join(failed, "\n")}
		}
		suite.Cases = append(suite.Cases, tc)
	}
	if rep.Error != nil {
		suite.Tests++
		kind := "script"
		if rep.Result == Interrupted {
			kind = "interrupted"
		}
		suite.Errors++
		suite.Cases = append(suite.Cases, junitCase{Name: "drill script", Classname: class, Time: fmt.Sprintf("%.3f", rep.DurationSeconds),
			Error: &junitFailure{Message: rep.Error.Message, Type: kind, Text: strings.TrimSpace(rep.Error.Message + "\n" + rep.Error.Backtrace)}})
	}
	all := junitSuites{Name: "restore-run drill " + rep.Drill, Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: suite.Time, Suites: []junitSuite{suite}}
	data, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(data, '\n')...), nil
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// checkLine renders a check on one line: PASS/FAIL, kind, name, detail.
func checkLine(c Check) string {
	s := "PASS "
	if !c.OK {
		s = "FAIL "
	}
	s += c.Kind + ": " + c.Name
	if c.Expected != "" || c.Actual != "" {
		s += fmt.Sprintf(" (expected %s, got %s)", c.Expected, c.Actual)
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	if c.Pos != "" {
		s += " [" + c.Pos + "]"
	}
	return s
}
