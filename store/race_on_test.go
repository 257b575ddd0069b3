//go:build race

package store

// raceEnabled: tests of large volumes use fewer jobs under the race
// detector, which makes each operation tens of times slower.
const raceEnabled = true
