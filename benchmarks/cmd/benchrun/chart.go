package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// chart draws push throughput (pipeline 1) against connections, one line
// per server, as a self-contained SVG: log-scaled x, linear y.
func chart(rep *report) []byte {
	ix := newIndex(rep)
	type pt struct{ x, y float64 }
	series := map[string][]pt{}
	for _, r := range rep.Rows {
		if r.Section != "push" || r.Res.Pipeline != 1 {
			continue
		}
		series[r.Target] = nil
	}
	ymax := 0.0
	xs := map[float64]bool{}
	for t := range series {
		seen := map[int]bool{}
		for _, r := range rep.Rows {
			if r.Section != "push" || r.Res.Pipeline != 1 || r.Target != t || seen[r.Res.Conns] {
				continue
			}
			seen[r.Res.Conns] = true
			y := ix.med(r.ID, t, ops)
			series[t] = append(series[t], pt{float64(r.Res.Conns), y})
			ymax = math.Max(ymax, y)
			xs[float64(r.Res.Conns)] = true
		}
		sort.Slice(series[t], func(i, j int) bool { return series[t][i].x < series[t][j].x })
	}
	const w, h, left, right, top, bottom = 720.0, 420.0, 80.0, 180.0, 40.0, 50.0
	pw, ph := w-left-right, h-top-bottom
	var xv []float64
	for x := range xs {
		xv = append(xv, x)
	}
	sort.Float64s(xv)
	if len(xv) == 0 || ymax == 0 {
		return []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="720" height="60"><text x="10" y="30" font-family="sans-serif">no push figures</text></svg>` + "\n")
	}
	lx0, lx1 := math.Log(xv[0]), math.Log(xv[len(xv)-1])
	if lx1 == lx0 {
		lx1 = lx0 + 1
	}
	ytop := niceCeil(ymax)
	X := func(x float64) float64 { return left + (math.Log(x)-lx0)/(lx1-lx0)*pw }
	Y := func(y float64) float64 { return top + ph - y/ytop*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14">Push throughput against connections (100-byte payload, no pipelining, median of %d)</text>`+"\n", left, rep.Rounds)
	for i := 0; i <= 5; i++ {
		y := ytop * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, Y(y), left+pw, Y(y))
		label := num(y)
		if y == 0 {
			label = "0"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, Y(y)+4, label)
	}
	for _, x := range xv {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", X(x), top, X(x), top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", X(x), top+ph+16, strconv.Itoa(int(x)))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top+ph, left+pw, top+ph)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top, left, top+ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">connections (log scale)</text>`+"\n", left+pw/2, h-12)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">ops/s</text>`+"\n", top+ph/2, top+ph/2)
	colors := map[string]string{"sluice": "#d62728", "redis-list": "#1f77b4", "redis-stream": "#17becf", "beanstalkd": "#2ca02c"}
	ly := top + 10
	for _, t := range targetOrder {
		pts, ok := series[t]
		if !ok {
			continue
		}
		c := colors[t]
		if c == "" {
			c = "#7f7f7f"
		}
		var path []string
		for _, p := range pts {
			path = append(path, fmt.Sprintf("%.1f,%.1f", X(p.x), Y(p.y)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(path, " "))
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %d connections: %s ops/s</title></circle>`+"\n", X(p.x), Y(p.y), c, t, int(p.x), num(p.y))
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", left+pw+14, ly, left+pw+34, ly, c)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+40, ly+4, targetLabel[t])
		ly += 20
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
