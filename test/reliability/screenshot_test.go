package reliability

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headlessdns/headless/internal/monitoring"
	"github.com/headlessdns/headless/internal/testkit"
)

// screenshot draws every panel of the dashboard from the test's Prometheus
// (query_range over the last minutes, each variable all its values) on a
// page served from the test, and saves headless Chromium's screenshot of it
// to out: docs/dashboard.png is made so, with
// HEADLESS_DASHBOARD_PNG=$PWD/docs/dashboard.png go test -run TestOnCall ./test/reliability.
func screenshot(t *testing.T, p *prometheus, out string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("HEADLESS_DASHBOARD_PNG needs chromium: %v", err)
	}
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "monitoring", monitoring.DashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Title  string
		Panels []struct {
			Type, Title string
			GridPos     struct{ W int }
			FieldConfig struct{ Defaults struct{ Unit string } }
			Targets     []struct{ Expr, LegendFormat string }
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	begin, end := p.started, time.Now()
	var page strings.Builder
	fmt.Fprintf(&page, `<!doctype html><html><head><meta charset="utf-8"><style>
body{background:#111217;color:#ccccdc;font:13px sans-serif;margin:8px;width:1584px}
h1{font-size:18px;margin:4px 0 8px} h2{font-size:14px;margin:14px 0 4px;border-bottom:1px solid #333}
.p{display:inline-block;vertical-align:top;background:#181b1f;border:1px solid #2c3235;margin:2px;padding:4px}
.p b{display:block;margin-bottom:2px} .l{font-size:11px} svg text{fill:#8e8e8e;font-size:10px}
</style></head><body><h1>%s <span style="font-size:12px;color:#8e8e8e">(Prometheus of test/reliability TestOnCall, %s to %s UTC; the API server stopped and started again)</span></h1>`,
		html.EscapeString(m.Title), begin.UTC().Format("15:04:05"), end.UTC().Format("15:04:05"))
	for _, panel := range m.Panels {
		if panel.Type == "row" {
			fmt.Fprintf(&page, "<h2>%s</h2>", html.EscapeString(panel.Title))
			continue
		}
		var series []drawn
		for _, target := range panel.Targets {
			// Grafana's $__rate_interval, four scrape intervals at least, and
			// more than the step of the query.
			series = append(series, p.queryRange(t, dashboardExpr(target.Expr, "10s"), target.LegendFormat, begin, end)...)
		}
		width := panel.GridPos.W*66 - 14
		draw := chart(series, width, 190, begin, end, panel.FieldConfig.Defaults.Unit)
		if panel.Type == "heatmap" {
			draw = heatmap(series, width, 190, begin, end)
		}
		fmt.Fprintf(&page, `<div class="p" style="width:%dpx"><b>%s</b>%s</div>`, width, html.EscapeString(panel.Title), draw)
	}
	page.WriteString("</body></html>")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page.String())
	}))
	defer srv.Close()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1600,1300", "--screenshot="+out, srv.URL)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
	t.Logf("dashboard drawn into %s", out)
}

// drawn is one series of a panel: its legend and points.
type drawn struct {
	legend string
	times  []float64
	values []float64
}

// queryRange returns the series of expr from begin to end, every 2 seconds,
// with their legends.
func (p *prometheus) queryRange(t testing.TB, expr, legend string, begin, end time.Time) []drawn {
	t.Helper()
	var data struct {
		Result []struct {
			Metric map[string]string
			Values [][2]any
		}
	}
	p.api(t, fmt.Sprintf("/api/v1/query_range?query=%s&start=%d&end=%d&step=2", url.QueryEscape(expr), begin.Unix(), end.Unix()), &data)
	label := regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	var out []drawn
	for _, r := range data.Result {
		d := drawn{legend: label.ReplaceAllStringFunc(legend, func(s string) string {
			return r.Metric[label.FindStringSubmatch(s)[1]]
		})}
		for _, v := range r.Values {
			ts, _ := v[0].(float64)
			s, _ := v[1].(string)
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				continue
			}
			d.times, d.values = append(d.times, ts), append(d.values, f)
		}
		out = append(out, d)
	}
	return out
}

// palette is Grafana's classic series colours.
var palette = []string{"#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642", "#cca300"}

// chart draws series as lines on a w by h SVG, with the y axis's top in unit,
// and their legends below.
func chart(series []drawn, w, h int, begin, end time.Time, unit string) string {
	top := 0.0
	for _, s := range series {
		for _, v := range s.values {
			top = math.Max(top, v)
		}
	}
	if top == 0 {
		top = 1
	}
	const left, bottom = 46, 14
	pw, ph := float64(w-left-4), float64(h-bottom-4)
	x := func(ts float64) float64 {
		return left + pw*(ts-float64(begin.Unix()))/float64(end.Unix()-begin.Unix())
	}
	y := func(v float64) float64 { return 4 + ph*(1-v/top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d">`, w, h)
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#2c3235"/><text x="2" y="%.1f">%s</text>`,
			left, w-4, y(v), y(v), y(v)+3, humanize(v, unit))
	}
	for i := 0; i <= 4; i++ {
		ts := float64(begin.Unix()) + float64(end.Unix()-begin.Unix())*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, x(ts)-20, h-2, time.Unix(int64(ts), 0).UTC().Format("15:04:05"))
	}
	for i, s := range series {
		var pts strings.Builder
		for j := range s.times {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(s.times[j]), y(s.values[j]))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke-width="1.5" stroke="%s" points="%s"/>`, palette[i%len(palette)], pts.String())
	}
	b.WriteString("</svg><div class=\"l\">")
	for i, s := range series {
		fmt.Fprintf(&b, `<span style="color:%s">&#9632;</span> %s &nbsp;`, palette[i%len(palette)], html.EscapeString(s.legend))
	}
	b.WriteString("</div>")
	return b.String()
}

// heatmap draws the series of a heatmap query, one a bucket by its upper
// bound (le, cumulative), as cells: the darker, the more changes in the
// bucket at that time. Only the buckets from the first to the last that
// hold a change are drawn.
func heatmap(series []drawn, w, h int, begin, end time.Time) string {
	le := func(d drawn) float64 {
		v, err := strconv.ParseFloat(d.legend, 64)
		if err != nil {
			return math.Inf(1)
		}
		return v
	}
	slices.SortFunc(series, func(a, b drawn) int { return cmp.Compare(le(a), le(b)) })
	// cells[b][t]: the changes of bucket b alone at time t.
	at := map[float64]int{}
	var times []float64
	for _, s := range series {
		for _, ts := range s.times {
			if _, ok := at[ts]; !ok {
				at[ts] = 0
				times = append(times, ts)
			}
		}
	}
	slices.Sort(times)
	for i, ts := range times {
		at[ts] = i
	}
	cells := make([][]float64, len(series))
	for b, s := range series {
		cells[b] = make([]float64, len(times))
		for j, ts := range s.times {
			cells[b][at[ts]] = s.values[j]
		}
	}
	for b := len(cells) - 1; b > 0; b-- {
		for i := range cells[b] {
			cells[b][i] -= cells[b-1][i]
		}
	}
	first, last, top := -1, -1, 0.0
	for b := range cells {
		for _, v := range cells[b] {
			if v > 0 {
				if first < 0 {
					first = b
				}
				last = b
				top = math.Max(top, v)
			}
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, `<svg width="%d" height="%d">`, w, h)
	if first < 0 {
		return out.String() + "</svg>"
	}
	const left, bottom = 46, 14
	rows := last - first + 1
	ch := float64(h-bottom-4) / float64(rows)
	span := float64(end.Unix() - begin.Unix())
	cw := math.Max(2, float64(w-left-4)*2/span)
	for b := first; b <= last; b++ {
		y := 4 + float64(last-b)*ch
		fmt.Fprintf(&out, `<text x="2" y="%.1f">%s</text>`, y+ch/2+3, humanize(le(series[b]), "s"))
		for i, ts := range times {
			if v := cells[b][i]; v > 0 {
				x := left + float64(w-left-4)*(ts-float64(begin.Unix()))/span
				fmt.Fprintf(&out, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#ef843c" fill-opacity="%.2f"/>`,
					x, y, cw, ch-1, 0.2+0.8*v/top)
			}
		}
	}
	for i := 0; i <= 4; i++ {
		ts := float64(begin.Unix()) + span*float64(i)/4
		fmt.Fprintf(&out, `<text x="%.1f" y="%d">%s</text>`, left+float64(w-left-4)*float64(i)/4-20, h-2, time.Unix(int64(ts), 0).UTC().Format("15:04:05"))
	}
	return out.String() + "</svg><div class=\"l\">changes programmed by duration bucket</div>"
}

// humanize writes v for an axis in unit.
func humanize(v float64, unit string) string {
	switch {
	case unit == "s" && v < 1 && v > 0:
		return strconv.FormatFloat(v*1000, 'g', 3, 64) + "ms"
	case unit == "s":
		return strconv.FormatFloat(v, 'g', 3, 64) + "s"
	case unit == "reqps" || unit == "ops":
		return strconv.FormatFloat(v, 'g', 3, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
