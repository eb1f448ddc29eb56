"""JSONL files for the tests of labelled sequences (tests/data/test_sequences.py) and of the classify task
(tests/tasks/test_classify.py): a writer, and every malformed file with what its error must say."""

import json


def write_jsonl(path, records):
    """``records`` (dicts) to the JSON Lines file ``path`` (a pathlib.Path); returns it as a str."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


LINE_1 = b'{"tokens": ["a", "b"], "label": "x"}\n'
BAD_FILES = {  # name: (content, what the error says besides the file name)
    "latin1.jsonl": (LINE_1 + '{"tokens": ["caf\u00e9"], "label": "x"}\n'.encode("latin-1"),
                     "is not UTF-8 (byte 0xe9 on line 2); convert it first"),
    "binary.jsonl": (LINE_1 + b"\x00\x01\x02\xff", "looks binary (a NUL byte on line 2)"),
    "null-label.jsonl": (LINE_1 + b'{"tokens": ["a"], "label": null}\n', "line 2: 'label' is null; it must be a class name"),
    "list-label.jsonl": (LINE_1 + b'{"tokens": ["a"], "label": ["x"]}\n', 'line 2: \'label\' is ["x"]'),
    "null-token.jsonl": (LINE_1 + b'{"tokens": ["a", null], "label": "x"}\n', "line 2: tokens[1] is null"),
    "all-null.jsonl": (b'{"tokens": ["a", "b"], "labels": [null, null]}\n{"tokens": ["a"], "labels": [null]}\n',
                       "no step has a label"),
    "scalar-line.jsonl": (LINE_1 + b"5\n", "line 2 is 5, not a JSON object"),
    "scalar-first.jsonl": (b"5\n", "line 1 is 5, not a JSON object"),
    "no-keys.jsonl": (b'{"text": "a b"}\n', "line 1: a sequence needs 'tokens' or 'features'"),
    "text-feature.jsonl": (b'{"features": [["a", 0.2]], "label": 1}\n', 'line 1: features[0] holds "a"; every feature must be a finite number'),
    "nested-feature.jsonl": (b'{"features": [[[1], 0.2]], "label": 1}\n', "line 1: features[0] holds [1]"),
    "empty-vector.jsonl": (b'{"features": [[]], "label": 1}\n', "line 1: features[0] is []; each step is a non-empty list"),
    "scalar-features.jsonl": (b'{"features": [1, 2], "label": 1}\n', "line 1: features[0] is 1; each step is a non-empty list"),
    "nan-feature.jsonl": (b'{"features": [[1.0]], "label": 1}\n{"features": [[NaN]], "label": 0}\n',
                          "line 2 is not valid JSON (NaN is not a JSON number) (a missing value? replace it"),
    "inf-feature.jsonl": (b'{"features": [[1.0], [-Infinity]], "label": 1}\n', "line 1 is not valid JSON (-Infinity is not a JSON number)"),
    "huge-feature.jsonl": (b'{"features": [[1' + b"0" * 400 + b']], "label": 1}\n', "within float32's range"),
    "string-target.jsonl": (b'{"features": [[1]], "target": 0.5}\n{"features": [[1]], "target": "0.7"}\n',
                            "line 2: 'target' is \"0.7\"; it must be a finite number"),
    "null-target.jsonl": (b'{"features": [[1]], "target": null}\n', "line 1: 'target' is null"),
    "list-target.jsonl": (b'{"features": [[1]], "target": [0.5]}\n', "line 1: 'target' is [0.5]"),
    "nan-target.jsonl": (b'{"features": [[1]], "target": NaN}\n', "line 1 is not valid JSON (NaN is not a JSON number)"),
    "two-outputs.jsonl": (LINE_1 + b'{"tokens": ["a"], "label": "x", "labels": ["x"]}\n',
                          "line 2: has both 'label' and 'labels'; a sequence takes one of"),
    "two-inputs.jsonl": (b'{"tokens": ["a"], "features": [[1]], "label": "x"}\n', "line 1: has both 'tokens' and 'features'"),
}
