package main

// The backends register themselves with package runtime when imported.
import (
	_ "github.com/ebmrun/ebmrun/runtime/native"
	_ "github.com/ebmrun/ebmrun/runtime/ort"
)
