package drill

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
)

// The HTML report is one self-contained page: inline CSS, an inline SVG
// timeline, no script, no external asset, so it opens from a CI artifact, a
// mail attachment or a file:// URL alike.

// PhaseColors are the timeline's colors, by phase (the legend shows them).
var PhaseColors = map[string]string{
	"download": "#2563eb",
	"prepare":  "#7c3aed",
	"execute":  "#ea580c",
	"validate": "#16a34a",
	"commit":   "#64748b",
	"rollback": "#dc2626",
	"expect":   "#0d9488",
	"teardown": "#cbd5e1",
}

var legendOrder = []string{"download", "prepare", "execute", "validate", "expect", "commit", "rollback", "teardown"}

const (
	colorPass      = "#15803d"
	colorFail      = "#b91c1c"
	colorObjective = "#b91c1c"
	colorDrillObj  = "#7c2d12"
)

func esc(s string) string { return html.EscapeString(s) }

// HTML renders the drill's report as a self-contained page.
func HTML(rep *Report) ([]byte, error) {
	var b strings.Builder
	verdict := strings.ToUpper(rep.Result)
	vcolor := map[string]string{Passed: colorPass, Failed: colorFail, ScriptError: "#c2410c", Interrupted: "#475569"}[rep.Result]
	if vcolor == "" {
		vcolor = colorFail
	}
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drill %s: %s</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#0f172a;background:#f8fafc;margin:0}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:28px 0 10px}
h3{font-size:16px;margin:18px 0 6px}
.badge{display:inline-block;padding:3px 12px;border-radius:6px;color:#fff;font-weight:700;font-size:15px;vertical-align:middle;margin-left:10px}
.meta{color:#475569;font-size:13px;margin:2px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:10px 16px;min-width:150px}
.card .k{color:#64748b;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:22px;font-weight:650}
.fail-box{background:#fef2f2;border:1px solid #fecaca;border-radius:8px;padding:10px 16px;margin:12px 0}
.fail-box li{margin:3px 0}
.chart{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:8px;overflow-x:auto}
table{border-collapse:collapse;width:100%%;background:#fff;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:%s;font-weight:700}
.fail{color:%s;font-weight:700}
.restore{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:6px 16px 12px;margin:14px 0}
.restore h3 .badge{font-size:12px;padding:2px 8px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
pre{background:#f1f5f9;padding:8px;border-radius:6px;white-space:pre-wrap;word-break:break-word}
details summary{cursor:pointer;color:#334155;font-size:13px}
.small{font-size:12px;color:#64748b}
</style></head><body><main>
`, esc(rep.Drill), esc(verdict), colorPass, colorFail)
	fmt.Fprintf(&b, `<h1>Drill %s<span class="badge" style="background:%s">%s</span></h1>`+"\n", esc(rep.Drill), vcolor, esc(verdict))
	if rep.Doc != "" {
		fmt.Fprintf(&b, `<p class="meta">%s</p>`+"\n", esc(rep.Doc))
	}
	fmt.Fprintf(&b, `<p class="meta">%s · sha256 %s · host %s · started %s UTC</p>`+"\n",
		esc(rep.File), esc(short(rep.SHA256, 12)), esc(rep.Host), esc(rep.Start.Format("2006-01-02 15:04:05")))

	// Summary cards.
	passed := 0
	for _, r := range rep.Restores {
		if r.Passed {
			passed++
		}
	}
	b.WriteString(`<div class="cards">`)
	card(&b, "Restores passed", fmt.Sprintf("%d / %d", passed, len(rep.Restores)), "")
	rtoColor := ""
	rtoText := secs(rep.RTOSeconds)
	if rep.RTOObjective != nil {
		rtoText += " / " + secs(*rep.RTOObjective)
		rtoColor = colorPass
		if rep.RTOSeconds > *rep.RTOObjective || rep.RTOSeconds == 0 {
			rtoColor = colorFail
		}
	}
	card(&b, "Drill RTO / objective", rtoText, rtoColor)
	card(&b, "Duration (with teardown)", secs(rep.DurationSeconds), "")
	b.WriteString("</div>\n")

	if len(rep.Failures) > 0 || rep.Error != nil {
		b.WriteString(`<div class="fail-box"><strong>Why the drill did not pass</strong><ul>`)
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "<li>%s</li>", esc(f))
		}
		if rep.Error != nil {
			fmt.Fprintf(&b, "<li>%s: %s</li>", esc(rep.Error.Class), esc(rep.Error.Message))
		}
		b.WriteString("</ul>")
		if rep.Error != nil && rep.Error.Backtrace != "" {
			fmt.Fprintf(&b, "<pre>%s</pre>", esc(rep.Error.Backtrace))
		}
		b.WriteString("</div>\n")
	}

	b.WriteString("<h2>Timeline</h2>\n<div class=\"chart\">")
	b.WriteString(timelineSVG(rep))
	b.WriteString("</div>\n<p class=\"small\">Each bar is one restore on the drill's clock: its phases, then the expectations " +
		"checked on the live target, then teardown (grey). The black tick is the restore's RTO (validated), or the moment a restore " +
		"the drill expected to fail failed; the red dashed line is its objective. A bar outlined in dark red ran long; a hatched " +
		"one failed. ⚡ marks an injected fault (hover for what it did).</p>\n")

	if len(rep.Checks) > 0 {
		b.WriteString("<h2>Drill checks</h2>\n")
		checksTable(&b, rep.Checks)
	}

	b.WriteString("<h2>Restores</h2>\n")
	for _, r := range rep.Restores {
		restoreSection(&b, r)
	}
	b.WriteString(`<p class="small">restore-run drill report · machine-readable: report.json, junit.xml</p>` + "\n</main></body></html>\n")
	return []byte(b.String()), nil
}

func card(b *strings.Builder, k, v, color string) {
	style := ""
	if color != "" {
		style = ` style="color:` + color + `"`
	}
	fmt.Fprintf(b, `<div class="card"><div class="k">%s</div><div class="v"%s>%s</div></div>`, esc(k), style, esc(v))
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func checksTable(b *strings.Builder, checks []Check) {
	b.WriteString("<table><tr><th></th><th>kind</th><th>check</th><th>expected</th><th>actual</th><th>detail</th></tr>\n")
	for _, c := range checks {
		cls, word := "pass", "PASS"
		if !c.OK {
			cls, word = "fail", "FAIL"
		}
		detail := esc(c.Detail)
		if c.Pos != "" {
			detail += ` <span class="small">` + esc(c.Pos) + "</span>"
		}
		fmt.Fprintf(b, `<tr><td class="%s">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>`+"\n",
			cls, word, esc(c.Kind), esc(c.Name), esc(c.Expected), esc(c.Actual), detail)
	}
	b.WriteString("</table>\n")
}

func restoreSection(b *strings.Builder, r *RestoreReport) {
	color, word := colorPass, "PASSED"
	if !r.Passed {
		color, word = colorFail, "FAILED"
	}
	fmt.Fprintf(b, `<div class="restore"><h3>%s<span class="badge" style="background:%s">%s</span></h3>`+"\n", esc(r.Name), color, word)
	obj := "none"
	if r.RTOObjective != nil {
		obj = secs(*r.RTOObjective)
	}
	fmt.Fprintf(b, `<p class="meta">driver <code>%s</code> · snapshot <code>%s</code> · target <code>%s</code></p>`+"\n", esc(r.Driver), esc(r.Snapshot), esc(r.Target))
	fmt.Fprintf(b, `<p class="meta">result <strong>%s</strong> · RTO <strong>%s</strong> (objective %s) · started at %s · torn down at %s`,
		esc(r.Result), esc(secs(r.RTOSeconds)), esc(obj), esc(secs(r.StartSeconds)), esc(secs(r.EndSeconds)))
	if r.RunID != "" {
		fmt.Fprintf(b, " · run <code>%s</code>", esc(r.RunID))
	}
	if r.RunReport != "" {
		fmt.Fprintf(b, ` · <a href="%s">run report</a>`, esc(r.RunReport))
	}
	b.WriteString("</p>\n")
	if len(r.Faults) > 0 {
		b.WriteString(`<p class="meta">faults: `)
		for i, f := range r.Faults {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "<code>%s</code>", esc(f.Spec))
		}
		if len(r.FaultStats) > 0 {
			keys := make([]string, 0, len(r.FaultStats))
			for k := range r.FaultStats {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %d", strings.ReplaceAll(k, "_", " "), r.FaultStats[k]))
			}
			fmt.Fprintf(b, " · %s", esc(strings.Join(parts, ", ")))
		}
		b.WriteString("</p>\n")
	}
	checksTable(b, r.Checks)
	if len(r.Phases) > 0 {
		b.WriteString("<table><tr><th>phase</th><th>start</th><th>duration</th><th>objective</th><th>attempts</th><th>result</th></tr>\n")
		for _, p := range r.Phases {
			objective := ""
			if p.Objective != nil {
				objective = secs(*p.Objective)
			}
			res := esc(p.Result)
			if p.ErrorClass != "" {
				res += " (" + esc(p.ErrorClass) + ")"
			}
			dur := esc(secs(p.DurationSeconds))
			if p.Over {
				dur = `<span class="fail">` + dur + " ran long</span>"
			}
			fmt.Fprintf(b, `<tr><td><span style="color:%s">■</span> %s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%d</td><td>%s</td></tr>`+"\n",
				phaseColor(p.Name), esc(p.Name), esc(secs(p.StartSeconds)), dur, esc(objective), p.Attempts, res)
		}
		b.WriteString("</table>\n")
	}
	if len(r.Events) > 0 {
		b.WriteString("<table><tr><th>at</th><th>fault event</th></tr>\n")
		for _, ev := range r.Events {
			what := esc(ev.What)
			if ev.Error != "" {
				what += `: <span class="fail">` + esc(ev.Error) + "</span>"
			}
			fmt.Fprintf(b, `<tr><td class="num">%s</td><td>%s</td></tr>`+"\n", esc(secs(ev.AtSeconds)), what)
		}
		b.WriteString("</table>\n")
	}
	if r.Error != "" {
		fmt.Fprintf(b, "<details><summary>error (%s)</summary><pre>%s</pre></details>\n", esc(r.ErrorClass), esc(r.Error))
	}
	if len(r.Validation) > 0 {
		fmt.Fprintf(b, "<details><summary>%d validation checks of the driver</summary><table><tr><th></th><th>check</th><th>detail</th></tr>\n", len(r.Validation))
		for _, c := range r.Validation {
			cls, word := "pass", "PASS"
			if !c.OK {
				cls, word = "fail", "FAIL"
			}
			detail := c.Detail
			if c.Expected != "" || c.Actual != "" {
				detail = strings.TrimSpace(fmt.Sprintf("expected %s, got %s. %s", c.Expected, c.Actual, c.Detail))
			}
			fmt.Fprintf(b, `<tr><td class="%s">%s</td><td>%s</td><td>%s</td></tr>`+"\n", cls, word, esc(c.Name), esc(detail))
		}
		b.WriteString("</table></details>\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, `<p class="small">note: %s</p>`+"\n", esc(n))
	}
	b.WriteString("</div>\n")
}

func phaseColor(name string) string {
	if c, ok := PhaseColors[name]; ok {
		return c
	}
	return "#94a3b8"
}

// niceStep returns a tick step giving at most about n ticks over span seconds.
func niceStep(span float64, n int) float64 {
	for _, s := range []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400} {
		if span/s <= float64(n) {
			return s
		}
	}
	return math.Ceil(span/float64(n)/3600) * 3600
}

func tickLabel(s, step float64) string {
	switch {
	case step < 0.1:
		return fmt.Sprintf("%.2fs", s)
	case step < 1:
		return fmt.Sprintf("%.1fs", s)
	case s >= 120:
		return fmt.Sprintf("%dm%02ds", int(s)/60, int(s)%60)
	}
	return fmt.Sprintf("%.0fs", s)
}

// timelineSVG draws every restore on the drill's clock against its objective.
func timelineSVG(rep *Report) string {
	const (
		width  = 1200.0
		left   = 250.0
		right  = 30.0
		top    = 34.0
		rowH   = 64.0
		barH   = 22.0
		legend = 64.0
	)
	rows := len(rep.Restores)
	if rows == 0 {
		rows = 1
	}
	// The scale covers what happened; an objective up to 2.5 times further
	// widens it, a farther one is drawn at the right edge with an arrow.
	tmax := rep.DurationSeconds
	for _, r := range rep.Restores {
		tmax = max(tmax, r.EndSeconds)
	}
	if tmax <= 0 {
		tmax = 1
	}
	reach := tmax * 2.5
	for _, r := range rep.Restores {
		if r.RTOObjective != nil && r.StartSeconds+*r.RTOObjective <= reach {
			tmax = max(tmax, r.StartSeconds+*r.RTOObjective)
		}
	}
	if rep.RTOObjective != nil && *rep.RTOObjective <= reach {
		tmax = max(tmax, *rep.RTOObjective)
	}
	tmax *= 1.04
	plotW := width - left - right
	sx := plotW / tmax
	x := func(t float64) float64 { return left + t*sx }
	height := top + float64(rows)*rowH + legend
	chartBottom := top + float64(rows)*rowH

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="100%%" style="max-width:%.0fpx;height:auto" viewBox="0 0 %.0f %.0f" font-family="system-ui,DejaVu Sans,sans-serif" role="img" aria-label="timeline of the drill's restores">`, width, width, height)
	b.WriteString(`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#ffffff" fill-opacity="0.55"/></pattern></defs>`)

	// Grid and axis.
	step := niceStep(tmax, 10)
	for t := 0.0; t <= tmax+1e-9; t += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e2e8f0" stroke-width="1"/>`, x(t), top-6, x(t), chartBottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#64748b" text-anchor="middle">%s</text>`, x(t), top-12, esc(tickLabel(t, step)))
	}
	fmt.Fprintf(&b, `<text x="8" y="%.1f" font-size="11" fill="#64748b">seconds since the drill started</text>`, top-12)

	for i, r := range rep.Restores {
		y0 := top + float64(i)*rowH
		if i%2 == 1 {
			fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%.0f" height="%.0f" fill="#f8fafc"/>`, y0, width, rowH)
		}
		by := y0 + 21 // above: labels and fault marks; below: the RTO
		mark, mcolor := "✔", colorPass
		if !r.Passed {
			mark, mcolor = "✘", colorFail
		}
		fmt.Fprintf(&b, `<text x="10" y="%.1f" font-size="15" fill="%s" font-weight="700">%s</text>`, by+barH/2+1, mcolor, mark)
		fmt.Fprintf(&b, `<text x="30" y="%.1f" font-size="14" font-weight="650" fill="#0f172a">%s</text>`, by+barH/2-4, esc(trunc(r.Name, 26)))
		fmt.Fprintf(&b, `<text x="30" y="%.1f" font-size="11" fill="#64748b">%s</text>`, by+barH/2+10, esc(trunc(r.Driver+" → "+r.Target, 36)))

		end := r.StartSeconds
		for _, p := range r.Phases {
			px, pw := x(p.StartSeconds), math.Max(p.DurationSeconds*sx, 1.5)
			title := fmt.Sprintf("%s: %s, %s", p.Name, secs(p.DurationSeconds), p.Result)
			if p.Attempts > 1 {
				title += fmt.Sprintf(", %d attempts", p.Attempts)
			}
			if p.Objective != nil {
				title += ", objective " + secs(*p.Objective)
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"><title>%s</title></rect>`, px, by, pw, barH, phaseColor(p.Name), esc(title))
			if p.Result == "failed" {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="url(#hatch)" stroke="%s" stroke-width="1.5"/>`, px, by, pw, barH, colorFail)
			}
			label := p.Name + " " + secs(p.DurationSeconds)
			if p.Over {
				label += " · ran long"
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="none" stroke="#7f1d1d" stroke-width="3"/>`, px-1, by-1, pw+2, barH+2)
			}
			switch {
			case pw > float64(len(label))*6.2+8:
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" fill="#ffffff" font-weight="600" pointer-events="none">%s</text>`, px+4, by+barH/2+4, esc(label))
			case p.Over:
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" fill="#7f1d1d" font-weight="700">%s</text>`, px, by+barH+13, esc(label))
			}
			end = math.Max(end, p.StartSeconds+p.DurationSeconds)
		}
		if r.ExpectEndSeconds > 0 {
			px, pw := x(r.ExpectStartSeconds), math.Max((r.ExpectEndSeconds-r.ExpectStartSeconds)*sx, 1.5)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"><title>expectations: %s</title></rect>`, px, by, pw, barH, PhaseColors["expect"], esc(secs(r.ExpectEndSeconds-r.ExpectStartSeconds)))
			end = math.Max(end, r.ExpectEndSeconds)
		}
		if r.EndSeconds > end {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="%s"><title>teardown: %s</title></rect>`, x(end), by+barH/2-3, math.Max((r.EndSeconds-end)*sx, 1), 6.0, PhaseColors["teardown"], esc(secs(r.EndSeconds-end)))
		}
		// The RTO reached, and the objective.
		if r.RTOSeconds > 0 && (r.Result == "success" || r.ExpectFailure != nil) {
			rx := x(r.StartSeconds + r.RTOSeconds)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#0f172a" stroke-width="2.5"/>`, rx, by-4, rx, by+barH+4)
			label := "RTO " + secs(r.RTOSeconds)
			if r.Result != "success" {
				label = "failed at " + secs(r.RTOSeconds)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" fill="#0f172a" font-weight="600">%s</text>`, rx+4, by+barH+13, esc(label))
		}
		if r.RTOObjective != nil {
			if t := r.StartSeconds + *r.RTOObjective; t <= tmax {
				ox := x(t)
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="5,3"><title>objective %s</title></line>`, ox, y0+3, ox, y0+rowH-3, colorObjective, esc(secs(*r.RTOObjective)))
				label := "objective " + secs(*r.RTOObjective)
				lx, anchor := ox+4, "start"
				if lx+float64(len(label))*6 > width-right {
					lx, anchor = ox-4, "end"
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" fill="%s" font-weight="600" text-anchor="%s">%s</text>`, lx, y0+13, colorObjective, anchor, esc(label))
			} else {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10.5" fill="%s" text-anchor="end">objective %s →</text>`, width-right, y0+13, colorObjective, esc(secs(*r.RTOObjective)))
			}
		}
		for _, ev := range r.Events {
			ex := x(ev.AtSeconds)
			title := ev.What
			if ev.Error != "" {
				title += ": " + ev.Error
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="14" text-anchor="middle" fill="#b91c1c">⚡<title>%s</title></text>`, ex, by-4, esc(title))
		}
	}
	if rep.RTOObjective != nil {
		if *rep.RTOObjective <= tmax {
			ox := x(*rep.RTOObjective)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="8,4"/>`, ox, top-6, ox, chartBottom, colorDrillObj)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="%s" text-anchor="end" font-weight="600">drill objective %s</text>`, ox-4, chartBottom-4, colorDrillObj, esc(secs(*rep.RTOObjective)))
		} else {
			note := "beyond the chart"
			if rep.RTOSeconds > 0 {
				note += ": the drill recovered in " + secs(rep.RTOSeconds)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="%s" font-weight="600">drill objective %s → (%s)</text>`, left, chartBottom+44, colorDrillObj, esc(secs(*rep.RTOObjective)), esc(note))
		}
	}
	if len(rep.Restores) == 0 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="13" fill="#64748b">no restore ran</text>`, left, top+rowH/2)
	}

	// Legend.
	lx, ly := left, chartBottom+22
	for _, name := range legendOrder {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="14" height="12" fill="%s"/><text x="%.1f" y="%.1f" font-size="12" fill="#334155">%s</text>`, lx, ly-10, PhaseColors[name], lx+18, ly, name)
		lx += 28 + float64(len(name))*7
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="5,3"/><text x="%.1f" y="%.1f" font-size="12" fill="#334155">objective</text>`, lx, ly-11, lx, ly+1, colorObjective, lx+5, ly)
	lx += 80
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#0f172a" stroke-width="2.5"/><text x="%.1f" y="%.1f" font-size="12" fill="#334155">RTO</text>`, lx, ly-11, lx, ly+1, lx+5, ly)
	b.WriteString("</svg>")
	return b.String()
}

func trunc(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
