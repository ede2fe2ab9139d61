//go:build goexperiment.jsonv2

package main

import (
	jsonv2 "encoding/json/v2"

	"github.com/tunroute/tunroute/internal/state"
)

func init() {
	decoders = append(decoders, decoder{"encoding/json/v2", func(d []byte) (*state.State, error) {
		var s state.State
		return &s, jsonv2.Unmarshal(d, &s)
	}})
}
