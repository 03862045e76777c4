from bridge.config.envsubst import interpolate, substitute

ENV = {"HOST": "db.example", "EMPTY": "", "TOKEN": "s3cr3t-token"}


def test_replaces_a_variable() -> None:
    done = substitute("postgres://${HOST}/x", ENV)
    assert done.text == "postgres://db.example/x"
    assert done.variables == ("HOST",)
    assert done.env_values == ("db.example",)
    assert not done.missing


def test_default_when_unset_or_empty() -> None:
    assert substitute("${NOPE:-fallback}", ENV).text == "fallback"
    assert substitute("${EMPTY:-fallback}", ENV).text == "fallback"
    assert substitute("${HOST:-fallback}", ENV).text == "db.example"
    assert substitute("${NOPE:-}", ENV).text == ""
    assert substitute("${NOPE:-a:b/c}", ENV).text == "a:b/c"


def test_set_but_empty_without_default_is_empty() -> None:
    done = substitute("[${EMPTY}]", ENV)
    assert done.text == "[]"
    assert not done.missing


def test_missing_variable_without_default() -> None:
    done = substitute("x ${NOPE} ${HOST}", ENV)
    assert done.missing == ("NOPE",)
    assert done.variables == ("NOPE", "HOST")


def test_double_dollar_escapes() -> None:
    assert substitute("price $${HOST} and ${HOST}", ENV).text == "price ${HOST} and db.example"


def test_dollar_before_jinja_is_left_alone() -> None:
    done = substitute("Total: ${{ body.amount }}", ENV)
    assert done.text == "Total: ${{ body.amount }}"
    assert not done.malformed and not done.variables


def test_malformed_reference() -> None:
    assert substitute("${ HOST }", ENV).malformed
    assert substitute("${HOST", ENV).malformed
    assert substitute("${1X}", ENV).malformed
    assert not substitute("$HOST and $ {x}", ENV).malformed


def test_values_are_not_interpolated_again() -> None:
    assert substitute("${A}", {"A": "${HOST}"}).text == "${HOST}"


def test_interpolate_walks_values_but_not_keys() -> None:
    data = {"${HOST}": ["${HOST}", {"k": "${TOKEN}"}, 5, None], "m": "${NOPE}"}
    result = interpolate(data, ENV)
    assert result.data == {"${HOST}": ["db.example", {"k": "s3cr3t-token"}, 5, None], "m": ""}
    assert result.variables == {
        ("${HOST}", 0): ("HOST",),
        ("${HOST}", 1, "k"): ("TOKEN",),
        ("m",): ("NOPE",),
    }
    assert result.env_values[("${HOST}", 1, "k")] == ("s3cr3t-token",)
    assert result.missing == {("m",)}
    assert result.problems == [
        (("m",), "environment variable NOPE is not set (write ${NOPE:-} if empty is fine)")
    ]


def test_interpolate_reports_malformed() -> None:
    result = interpolate({"a": "${oops"}, ENV)
    assert result.missing == {("a",)}
    assert [message for _, message in result.problems] == [
        "'${' must begin ${NAME} or ${NAME:-default}; write $${ for a literal ${"
    ]
