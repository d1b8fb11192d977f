package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chart draws, for every target, how many times better ours is than the
// reference (headless than kubernetes, the drop-in than stock: higher QPS,
// or lower memory, bytes and times), with the target marked: one bar a
// target, green when met.
func (r *report) chart(ts []target) string {
	const (
		width, left, right, rowH, top = 1000, 470, 60, 34, 50
	)
	var rows []target
	for _, t := range ts {
		if strings.Contains(t.name, " ceiling") || strings.HasPrefix(t.name, "in process:") {
			continue // a ratio to whoami or the cache, or of a big service to a small one, not to kubernetes
		}
		rows = append(rows, t)
	}
	height := top + rowH*len(rows) + 40
	scaleMax := 1.0
	for _, t := range rows {
		scaleMax = math.Max(scaleMax, math.Max(advantage(t), goal(t)))
	}
	scaleMax = math.Ceil(scaleMax * 1.1)
	x := func(v float64) float64 { return left + (width-left-right)*v/scaleMax }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">headless against kubernetes, the drop-in against stock: times better (1x = same)</text>`+"\n", 10)
	step := math.Max(1, math.Ceil(scaleMax/10)) // at most 10 grid lines
	for v := 0.0; v <= scaleMax; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#666">%.0fx</text>`+"\n",
			x(v), top-8, x(v), height-30, x(v), height-14, v)
	}
	for i, t := range rows {
		y := top + i*rowH
		color := "#2e7d32"
		if !t.met {
			color = "#c62828"
		}
		a := advantage(t)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+18, html.EscapeString(t.name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="20" fill="%s"/>`+"\n", left, y+4, x(a)-left, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2fx</text>`+"\n", x(a)+4, y+18, a)
		if g := goal(t); g > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="2" stroke-dasharray="3,2"/>`+"\n", x(g), y, x(g), y+28)
		}
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>`+"\n", x(1), top-8, x(1), height-30)
	b.WriteString("</svg>\n")
	return b.String()
}

// advantage is how many times better ours is on t.
func advantage(t target) float64 {
	if t.ratio <= 0 {
		return 0 // nothing measured, or less than nothing over whoami
	}
	if t.higher {
		return t.ratio
	}
	return 1 / t.ratio
}

// goal is the advantage t asks for, 0 when it asks for none.
func goal(t target) float64 {
	switch {
	case t.goal <= 0:
		return 0
	case t.higher:
		return t.goal
	}
	return 1 / t.goal
}
