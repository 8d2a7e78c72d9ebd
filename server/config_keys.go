package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// checkKeys walks a configuration file's JSON against the Config type
// before it is decoded, so that every mistake is reported with the full
// path of its key (limits.auth_timeout, not auth_timeout or a Go field
// name): unknown keys, keys given twice (encoding/json silently keeps the
// last one), values of the wrong JSON type and durations that do not
// parse.
func checkKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkValue(dec, reflect.TypeOf(Config{}), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

var durationType = reflect.TypeOf(Duration(0))

// walkValue reads one JSON value from dec and checks it against t; path
// names it for messages ("" is the top level).
func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	key := path
	if key == "" {
		key = "the file"
	} else {
		key = fmt.Sprintf("key %q", path)
	}
	switch {
	case t == durationType:
		s, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s: want a duration string such as \"30s\", got %s", key, describe(tok))
		}
		if _, err := time.ParseDuration(s); err != nil {
			return fmt.Errorf("%s: %q is not a duration (write it like \"30s\", \"5m\" or \"1h\")", key, s)
		}
		return nil
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			if path == "" {
				return fmt.Errorf("want a JSON object, got %s", describe(tok))
			}
			return fmt.Errorf("%s: want a JSON object, got %s", key, describe(tok))
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			name := kt.(string)
			full := name
			if path != "" {
				full = path + "." + name
			}
			if seen[name] {
				return fmt.Errorf("key %q is given twice (JSON would silently keep the last one; remove one)", full)
			}
			seen[name] = true
			var ft reflect.Type
			if t.Kind() == reflect.Map {
				ft = t.Elem()
			} else if f, ok := fieldByTag(t, name); ok {
				ft = f.Type
			} else {
				return fmt.Errorf("unknown key %q (see README.md, section Configuration, for the keys)", full)
			}
			if err := walkValue(dec, ft, full); err != nil {
				return err
			}
		}
		_, err := dec.Token() // '}'
		return err
	case t.Kind() == reflect.Slice:
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return fmt.Errorf("%s: want a JSON list, got %s", key, describe(tok))
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	case t.Kind() == reflect.String:
		if _, ok := tok.(string); !ok {
			return fmt.Errorf("%s: want a string, got %s", key, describe(tok))
		}
	case t.Kind() == reflect.Bool:
		if _, ok := tok.(bool); !ok {
			return fmt.Errorf("%s: want true or false, got %s", key, describe(tok))
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		n, ok := tok.(json.Number)
		if ok {
			_, err := n.Int64()
			ok = err == nil
		}
		if !ok {
			return fmt.Errorf("%s: want a whole number, got %s", key, describe(tok))
		}
	}
	return nil
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "a JSON object"
		}
		return "a JSON list"
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return fmt.Sprintf("%v", v)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// fieldByTag finds the field of struct type t whose json tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
