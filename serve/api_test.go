package serve_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ebmrun/ebmrun/serve"
)

// A small validator of the OpenAPI subset the document uses: path
// templates, responses by status, $ref, and the schema keywords type,
// required, properties, additionalProperties: false, items and minimum.

var apiDoc = func() map[string]any {
	var d map[string]any
	if err := json.Unmarshal(serve.OpenAPI, &d); err != nil {
		panic(err)
	}
	return d
}()

func resolve(v map[string]any) map[string]any {
	for {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v
		}
		cur := any(apiDoc)
		for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[p]
		}
		v = cur.(map[string]any)
	}
}

func matchPath(tmpl, path string) bool {
	a, b := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.HasPrefix(a[i], "{") && a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkAPI says how an answer departs from the document.
func checkAPI(method, path string, code int, ctype string, body []byte) error {
	path, _, _ = strings.Cut(path, "?")
	var op map[string]any
	for tmpl, item := range apiDoc["paths"].(map[string]any) {
		if matchPath(tmpl, path) {
			op, _ = item.(map[string]any)[strings.ToLower(method)].(map[string]any)
		}
	}
	if op == nil {
		if code == 404 || code == 405 {
			return checkSchema(resolve(map[string]any{"$ref": "#/components/schemas/Error"}), decodeJSON(body), "$")
		}
		return fmt.Errorf("%s %s is not in the document", method, path)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(code)].(map[string]any)
	if !ok {
		return fmt.Errorf("status %d is not documented", code)
	}
	resp = resolve(resp)
	media, _, _ := strings.Cut(ctype, ";")
	content, ok := resp["content"].(map[string]any)[media].(map[string]any)
	if !ok {
		return fmt.Errorf("content type %q is not documented for %d", ctype, code)
	}
	if media != "application/json" {
		return nil
	}
	return checkSchema(resolve(content["schema"].(map[string]any)), decodeJSON(body), "$")
}

func decodeJSON(b []byte) any {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	return v
}

func checkSchema(s map[string]any, v any, at string) error {
	s = resolve(s)
	if err, ok := v.(error); ok {
		return err
	}
	switch s["type"] {
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, v)
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := o[r.(string)]; !ok {
				return fmt.Errorf("%s: missing %q", at, r)
			}
		}
		for k, val := range o {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					return fmt.Errorf("%s: %q is not in the schema", at, k)
				}
				continue
			}
			if err := checkSchema(ps, val, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, v)
		}
		if it, ok := s["items"].(map[string]any); ok {
			for i, e := range a {
				if err := checkSchema(it, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: want a string, got %T", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", at, v)
		}
	case "number", "integer":
		f, ok := v.(float64)
		if !ok {
			return fmt.Errorf("%s: want a number, got %T", at, v)
		}
		if s["type"] == "integer" && f != float64(int64(f)) {
			return fmt.Errorf("%s: want an integer, got %v", at, f)
		}
		if m, ok := s["minimum"].(float64); ok && f < m {
			return fmt.Errorf("%s: %v is below %v", at, f, m)
		}
	}
	return nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
