package store_test

// TEMPORARY until the store lands: with SLUICE_SELFTEST=1, the model stands
// in for the store.

import (
	"sluice/store"
)

func newGen() store.Generator { return store.NewSeqGenerator() }

func storeSUT(cfg store.Config, gen store.Generator) (sut, error) { return newModel(cfg, gen), nil }
