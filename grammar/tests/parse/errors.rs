//! What each kind of mistake is reported as. Expected diagnostics are written as
//! `line:col: message @ "text under the caret" [label] (help: ..)`.

use crate::common::errors;
use segflow_grammar::{ast::Item, parse};

#[test]
fn one_file_reports_every_error_and_keeps_the_good_items() {
    let source = "\
entity user { key id: string; }
event order { user: user; amount: decimal; }
tag user.spend = sum(order.amount within 90d)
segment big on user = spend > 100;
entty store { key id: string; }
tag user.orders = count(order witin 30d);
segmnt small on user = spend < 10;
select * from user where big order by spend desc limit 10;
";
    assert_eq!(
        errors(source),
        "\
3:46: expected \";\" after the tag definition @ \"\" [`;` missing here] (help: statements end with `;`)
5:1: unexpected identifier `entty` @ \"entty\" [expected one of: `entity`, `event`, `tag`, `segment`, `select`] (help: did you mean `entity`?)
6:31: unexpected identifier `witin` @ \"witin\" [expected one of: `where`, `by`, `within`, an operator, `,`, `.`, `(`, `)`] (help: did you mean `within`?)
7:1: unexpected identifier `segmnt` @ \"segmnt\" [expected one of: `entity`, `event`, `tag`, `segment`, `select`] (help: did you mean `segment`?)
"
    );
    // The tag missing its `;` is kept; the three broken items are left out.
    let kinds: Vec<_> = parse(source)
        .file
        .items
        .iter()
        .map(|item| match item {
            Item::Entity(d) => d.name.name.clone(),
            Item::Event(d) => d.name.name.clone(),
            Item::Tag(d) => d.name.name.clone(),
            Item::Segment(d) => d.name.name.clone(),
            Item::Query(q) => format!("select from {}", q.from.name),
        })
        .collect();
    assert_eq!(kinds, ["user", "order", "spend", "big", "select from user"]);
}

#[test]
fn misspelled_item_keywords_one_after_another() {
    assert_eq!(
        errors("entty a { key id: string; }\nevnt b { x: int; }\nentity c { key id: string; }"),
        "\
1:1: unexpected identifier `entty` @ \"entty\" [expected one of: `entity`, `event`, `tag`, `segment`, `select`] (help: did you mean `entity`?)
2:1: unexpected identifier `evnt` @ \"evnt\" [expected one of: `entity`, `event`, `tag`, `segment`, `select`] (help: did you mean `event`?)
"
    );
}

#[test]
fn misspelled_keywords_inside_statements() {
    assert_eq!(
        errors("select a form user;"),
        "1:10: unexpected identifier `form` @ \"form\" [expected one of: `from`, an operator, `as`, `,`, `.`, `(`] (help: did you mean `from`?)\n"
    );
    assert_eq!(
        errors("select a from user whre x;"),
        "1:20: unexpected identifier `whre` @ \"whre\" [expected one of: `where`, `group`, `order`, `limit`, `;`] (help: did you mean `where`?)\n"
    );
}

#[test]
fn missing_semicolon_points_after_the_statement() {
    assert_eq!(
        errors("tag a.b = 1\ntag a.c = 2;"),
        "1:12: expected \";\" after the tag definition @ \"\" [`;` missing here] (help: statements end with `;`)\n"
    );
    assert_eq!(
        errors("segment s on user = x   -- done\n"),
        "1:22: expected \";\" after the segment definition @ \"\" [`;` missing here] (help: statements end with `;`)\n"
    );
    assert_eq!(
        errors("select * from user limit 5 entity x { key id: string; }"),
        "1:27: expected \";\" after the query @ \"\" [`;` missing here] (help: statements end with `;`)\n"
    );
    assert_eq!(
        errors("entity user { key id: string\n  name: string?\n}"),
        "\
1:29: expected \";\" after the field @ \"\" [`;` missing here] (help: statements end with `;`)
2:16: expected \";\" after the field @ \"\" [`;` missing here] (help: statements end with `;`)
"
    );
    // Each statement is kept despite the missing `;`.
    assert_eq!(parse("tag a.b = 1\ntag a.c = 2").file.items.len(), 2);
    assert_eq!(
        parse("entity user { key id: string\n  name: string?\n}").file.to_string(),
        "entity user {\n  key id: string;\n  name: string?;\n}\n"
    );
}

#[test]
fn missing_closing_brace() {
    assert_eq!(
        errors("entity user { key id: string;\nevent e { a: int; }"),
        "1:30: expected \"}\" after the last field @ \"\" [`}` missing here] (help: entity and event bodies end with `}`)\n"
    );
}

#[test]
fn unexpected_end_of_file() {
    assert_eq!(
        errors("tag user.x = count(order"),
        "1:25: unexpected end of file @ \"\" [expected one of: `where`, `by`, `within`, an operator, `,`, `.`, `(`, `)`]\n"
    );
    assert_eq!(
        errors("entity user { key id: string;"),
        "1:30: unexpected end of file @ \"\" [expected one of: `key`, identifier, `}`]\n"
    );
}

#[test]
fn unterminated_string_points_at_the_opening_quote() {
    // The string ends with its line, so the next statement still parses.
    assert_eq!(
        errors("tag user.x = \"never closed;\ntag user.y = 'ok';"),
        "1:14: unterminated string @ \"\\\"\" [this string is never closed] (help: close the string with a matching quote)\n"
    );
    assert_eq!(parse("tag user.x = \"never closed;\ntag user.y = 'ok';").file.items.len(), 2);
}

#[test]
fn unterminated_block_comment() {
    assert_eq!(
        errors("tag user.x = 1;\n/* never closed\ntag user.y = 1;"),
        "2:1: unterminated block comment @ \"/*\" [this comment is never closed] (help: close the comment with `*/`)\n"
    );
}

#[test]
fn bad_duration_unit() {
    assert_eq!(
        errors("tag user.x = count(order within 30x);"),
        "1:35: unknown duration unit `x` @ \"x\" [not a duration unit] (help: duration units are `ms`, `s`, `m`, `h`, `d` and `w`, as in `30d`)\n"
    );
    assert_eq!(
        errors("tag a.b = 1.5d;"),
        "1:14: unexpected `d` after a number @ \"d\" (help: a duration is a whole number of a unit, as in `36h`)\n"
    );
}

#[test]
fn bad_characters() {
    assert_eq!(errors("tag user.x = a @ b;"), "1:16: unexpected character `@` @ \"@\"\n");
    assert_eq!(
        errors("tag a.b = x!y;"),
        "1:12: unexpected character `!` @ \"!\" (help: use `not` to negate, or `!=` to compare)\n"
    );
    assert_eq!(
        errors("tag a.b = x == y;"),
        "1:13: `==` is not an operator @ \"==\" (help: compare with a single `=`)\n"
    );
    assert_eq!(
        errors("tag a.b = ‘x’;"),
        "\
1:11: unexpected character `‘` @ \"‘\" (help: use a straight quote (`\"` or `'`) instead of a typographic one)
1:13: unexpected character `’` @ \"’\" (help: use a straight quote (`\"` or `'`) instead of a typographic one)
"
    );
    assert_eq!(
        errors("tag a.b = 1; // note\ntag a.c = 2;"),
        "1:14: `//` does not start a comment @ \"//\" (help: comments start with `--` or are written `/* .. */`)\n"
    );
    // A run of bad characters is one error.
    assert_eq!(errors("tag a.b = 1 $$$;"), "1:13: unexpected characters `$$$` @ \"$$$\"\n");
}

#[test]
fn bad_escapes_and_literals() {
    assert_eq!(
        errors(r#"tag user.x = "a\qb";"#),
        "1:16: unknown escape `\\q` @ \"\\\\q\" (help: the escapes are `\\n`, `\\t`, `\\r`, `\\0`, `\\\\`, `\\\"`, `\\'` and `\\u{..}`)\n"
    );
    assert_eq!(
        errors(r#"tag user.x = "\u{110000}";"#),
        "1:15: invalid unicode escape @ \"\\\\u{110000}\" (help: write one to six hex digits, as in `\\u{e9}`)\n"
    );
    assert_eq!(
        errors("tag user.x = 99999999999999999999;"),
        "1:14: integer literal is too large @ \"99999999999999999999\" [does not fit in an int]\n"
    );
    // 2^63 only fits when negated.
    assert_eq!(
        errors("tag a.b = 9223372036854775808;\ntag a.c = -9223372036854775808;"),
        "1:11: integer literal is too large @ \"9223372036854775808\" [does not fit in an int]\n"
    );
}

#[test]
fn expected_tokens_read_as_words() {
    assert_eq!(errors("tag a.b = ;"), "1:11: unexpected `;` @ \";\" [expected an expression]\n");
    assert_eq!(
        errors("tag user.x = 1;\n  tag user.y = a ? b;"),
        "2:18: unexpected `?` @ \"?\" [expected one of: an operator, `;`, `.`, `(`]\n"
    );
    assert_eq!(
        errors("entity user { key id: string; name string; city: string; }"),
        "1:36: unexpected identifier `string` @ \"string\" [expected `:`]\n"
    );
    assert_eq!(
        errors("tag a.b = f(x, 2 within 3d);"),
        "1:18: unexpected keyword `within` @ \"within\" [expected `,` or `)`] (help: in a call, `by`, `where` and `within` follow the first argument, in that order)\n"
    );
}

#[test]
fn reserved_keyword_as_a_name() {
    assert_eq!(
        errors("entity user { key id: string; end: int; }"),
        "1:31: unexpected keyword `end` @ \"end\" [expected one of: `key`, identifier, `}`] (help: this keyword is reserved and cannot be used as a name)\n"
    );
}

#[test]
fn comparisons_do_not_chain() {
    assert_eq!(
        errors("tag a.b = a = b = c;"),
        "1:17: unexpected `=` @ \"=\" [expected an operator or `;`] (help: comparisons do not chain; combine them with `and`)\n"
    );
}

#[test]
fn key_in_an_event() {
    assert_eq!(
        errors("event e { key id: string; }"),
        "1:11: `key` is only allowed in an entity @ \"key\" (help: remove `key`: an event is identified by its implicit `id` field)\n"
    );
}

#[test]
fn junk_between_items_is_one_error() {
    assert_eq!(
        errors("}}}; ;; tag a.b = 1;"),
        "1:1: unexpected `}` @ \"}\" [expected one of: `entity`, `event`, `tag`, `segment`, `select`]\n"
    );
    assert_eq!(parse("}}}; ;; tag a.b = 1;").file.items.len(), 1);
}

#[test]
fn semicolon_after_a_body() {
    assert_eq!(
        errors("entity user { key id: string; };\nentity store { key id: string; }"),
        "1:32: unexpected `;` @ \";\" [expected one of: `entity`, `event`, `tag`, `segment`, `select`] (help: remove this `;`: an entity or event body ends with `}` alone)\n"
    );
    assert_eq!(parse("entity user { key id: string; };\nentity store { key id: string; }").file.items.len(), 2);
}

#[test]
fn too_deep_is_an_error_not_a_crash() {
    let source = format!("tag a.b = {}1;", "1 + ".repeat(100_000));
    let parsed = parse(&source);
    assert_eq!(parsed.diagnostics.len(), 1);
    assert_eq!(parsed.diagnostics[0].message, "expression is nested too deeply");

    for source in [
        format!("tag a.b = {}x;", "not ".repeat(100_000)),
        format!("tag a.b = {}x;", "- ".repeat(100_000)),
        format!("tag a.b = {}x{};", "(".repeat(100_000), ")".repeat(100_000)),
        format!("tag a.b = {}x{};", "f(".repeat(100_000), ")".repeat(100_000)),
        format!("tag a.b = {}1{};", "[".repeat(100_000), "]".repeat(100_000)),
        format!("tag a.b = {}", "(".repeat(100_000)),
    ] {
        let parsed = parse(&source);
        let _ = parsed.file.to_string();
    }
    // Flat is fine however long.
    let source = format!("tag a.b = x in [{}1];", "1, ".repeat(100_000));
    assert!(parse(&source).diagnostics.is_empty());
}
