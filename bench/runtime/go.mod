module github.com/ebmrun/ebmrun/bench/runtime

go 1.26.0

replace github.com/ebmrun/ebmrun => ../..

require (
	github.com/ebmrun/ebmrun v0.0.0-00010101000000-000000000000
	github.com/owulveryck/onnx-go v0.5.0
	gorgonia.org/tensor v0.9.24
)

require golang.org/x/sys v0.48.0 // indirect

require (
	codeberg.org/sbinet/npyio v0.14.0 // indirect
	github.com/apache/arrow/go/arrow v0.0.0-20211112161151-bc219186db40 // indirect
	github.com/awalterschulze/gographviz v2.0.3+incompatible // indirect
	github.com/campoy/embedmd v1.0.0 // indirect
	github.com/chewxy/hm v1.0.0 // indirect
	github.com/chewxy/math32 v1.10.1 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/golang/protobuf v1.5.2 // indirect
	github.com/google/flatbuffers v2.0.6+incompatible // indirect
	github.com/google/uuid v1.3.0 // indirect
	github.com/leesper/go_rng v0.0.0-20190531154944-a612b043e353 // indirect
	github.com/nlpodyssey/gopickle v0.3.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	github.com/xtgo/set v1.0.0 // indirect
	github.com/yalue/onnxruntime_go v1.27.0 // indirect
	// gorgonia.org/tensor imports this package; the version gorgonia
	// v0.9.18 asks for panics at start-up on Go 1.26 unless the environment
	// has ASSUME_NO_MOVING_GC_UNSAFE_RISK_IT_WITH=go1.26. This later version
	// asks the runtime instead and starts without it. See README.md.
	go4.org/unsafe/assume-no-moving-gc v0.0.0-20231121144256-b99613f794b6 // indirect
	golang.org/x/text v0.42.0 // indirect
	golang.org/x/xerrors v0.0.0-20200804184101-5ec99f83aff1 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	gorgonia.org/cu v0.9.4 // indirect
	gorgonia.org/dawson v1.2.0 // indirect
	// onnx-go v0.5.0 asks for v0.9.4, which does not compile against the
	// gorgonia.org/tensor the module graph selects (tensor.BLAS gained methods).
	gorgonia.org/gorgonia v0.9.18 // indirect
	gorgonia.org/vecf32 v0.9.0 // indirect
	gorgonia.org/vecf64 v0.9.0 // indirect
)
