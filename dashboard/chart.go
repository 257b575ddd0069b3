package dashboard

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// The charts are inline SVG drawn here: a polyline per series, no
// library, no script. They render with JavaScript off; the overview's
// refresh replaces them with newer ones.

const (
	chartW      = 560
	chartH      = 110
	chartPad    = 4
	chartPoints = 360 // an hour at one point per 10 s; a shorter span at one a second
)

// chart is one series ready for the template.
type chart struct {
	Name    string
	Now     float64 // the last second's rate
	Max     float64 // the top of the scale
	Points  string  // the polyline's points attribute
	Samples int     // seconds the chart covers
	W, H    int
}

// makeChart scales rates (oldest first, one a second, at most the last
// hour) into a polyline across the chart's width: at most chartPoints
// points, each the mean of the seconds it stands for, the newest second
// always in the last one. A lone point is drawn as a flat stroke.
func makeChart(name string, rates []float64) chart {
	c := chart{Name: name, W: chartW, H: chartH, Samples: len(rates)}
	if len(rates) > 0 {
		c.Now = rates[len(rates)-1]
	}
	per := max(1, (len(rates)+chartPoints-1)/chartPoints)
	var pts []float64
	for end := len(rates); end > 0; end -= per {
		sum, n := 0.0, 0
		for k := max(0, end-per); k < end; k++ {
			sum += rates[k]
			n++
		}
		pts = append(pts, sum/float64(n))
	}
	slices.Reverse(pts)
	if len(pts) == 1 {
		pts = append(pts, pts[0])
	}
	top := 0.0
	for _, v := range pts {
		top = math.Max(top, v)
	}
	c.Max = niceCeil(top)
	var b strings.Builder
	for i, v := range pts {
		x := chartPad + float64(i)*float64(chartW-2*chartPad)/float64(max(1, len(pts)-1))
		y := float64(chartH-chartPad) - v/c.Max*float64(chartH-2*chartPad)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(x, 'f', 1, 64) + "," + strconv.FormatFloat(y, 'f', 1, 64))
	}
	c.Points = b.String()
	return c
}

// span says how far back a chart of n seconds goes.
func span(n int) string {
	if n < 120 {
		return strconv.Itoa(n) + " s"
	}
	return strconv.Itoa(n/60) + " min"
}

// niceCeil is the smallest of 1, 2, 5 times a power of ten at least v
// (1 for nothing at all).
func niceCeil(v float64) float64 {
	if v <= 1 {
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

// bar is a usage bar's width in an SVG of width w.
func bar(active, limit int64, w int) int {
	if limit <= 0 {
		return 0
	}
	return int(math.Round(math.Min(1, float64(active)/float64(limit)) * float64(w)))
}

// rate prints events per second.
func rate(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
