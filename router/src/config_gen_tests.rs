//! Unit tests of config-gen: Go template constructs, defaults, flags, env, error positions.

use super::*;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn defaults_are_the_seeds() {
    let out = render(
        "t.tmpl",
        "{{.ClusterName}} {{.Namespace}} {{.DatabaseName}} {{.ShardCount}} {{.PoolMode}} {{.MaxPoolSize}} {{.TLSEnabled}}",
        &Vars::default(),
    )
    .unwrap();
    assert_eq!(
        out,
        "default orochi-cloud postgres 32 transaction 100 false"
    );
}

#[test]
fn range_lists_every_shard_with_root_access() {
    let vars = Vars {
        shard_count: 3,
        cluster_name: "c1".into(),
        ..Vars::default()
    };
    let tmpl = "{{range .Shards}}[s.{{.Index}}] host={{$.ClusterName}}-{{.Index}}{{if not .Last}},{{end}}\n{{end}}";
    let out = render("t.tmpl", tmpl, &vars).unwrap();
    assert_eq!(out, "[s.0] host=c1-0,\n[s.1] host=c1-1,\n[s.2] host=c1-2\n");
    // Go's two-variable range form and len work too.
    let out = render(
        "t.tmpl",
        "{{range $i, $s := .Shards}}{{$i}}={{$s.Index}} {{end}}{{len .Shards}}",
        &vars,
    )
    .unwrap();
    assert_eq!(out, "0=0 1=1 2=2 3");
}

#[test]
fn if_tls_enabled_and_else() {
    let tmpl = "{{- if .TLSEnabled}}tls = on{{else}}tls = off{{end -}}";
    assert_eq!(render("t", tmpl, &Vars::default()).unwrap(), "tls = off");
    let on = Vars {
        tls_enabled: true,
        ..Vars::default()
    };
    assert_eq!(render("t", tmpl, &on).unwrap(), "tls = on");
    assert_eq!(
        render("t", r#"{{if eq .PoolMode "transaction"}}tx{{end}}"#, &on).unwrap(),
        "tx"
    );
}

#[test]
fn flags_go_and_gnu_style_beat_env() {
    let env = |k: &str| match k {
        "CLUSTER_NAME" => Some("from-env".to_string()),
        "NAMESPACE" => Some("ns-env".to_string()),
        _ => None,
    };
    let o = parse_args(&args(&["-template", "a.tmpl"]), &env)
        .unwrap()
        .unwrap();
    assert_eq!(o.vars.cluster_name, "from-env");
    assert_eq!(o.vars.namespace, "ns-env");
    assert_eq!(o.output, None);

    let o = parse_args(
        &args(&[
            "-template",
            "a.tmpl",
            "--output",
            "a.toml",
            "-cluster-name",
            "my-cluster",
            "--namespace=production",
            "-shard-count=64",
            "--database-name",
            "app",
            "-pool-mode",
            "session",
            "-max-pool-size",
            "7",
            "-tls-enabled",
        ]),
        &env,
    )
    .unwrap()
    .unwrap();
    assert_eq!(o.template, PathBuf::from("a.tmpl"));
    assert_eq!(o.output, Some(PathBuf::from("a.toml")));
    assert_eq!(
        o.vars,
        Vars {
            cluster_name: "my-cluster".into(),
            namespace: "production".into(),
            database_name: "app".into(),
            shard_count: 64,
            pool_mode: "session".into(),
            max_pool_size: 7,
            tls_enabled: true,
        }
    );
    let o = parse_args(&args(&["-template", "a", "-tls-enabled=false"]), &|k| {
        (k == "TLS_ENABLED").then(|| "true".to_string())
    })
    .unwrap()
    .unwrap();
    assert!(!o.vars.tls_enabled);
}

#[test]
fn bad_arguments_are_refused() {
    assert!(parse_args(&args(&[]), &no_env)
        .unwrap_err()
        .contains("-template"));
    assert!(parse_args(&args(&["-template", "a", "-shard-count", "0"]), &no_env).is_err());
    assert!(parse_args(&args(&["-template", "a", "-shard-count", "x"]), &no_env).is_err());
    assert!(
        parse_args(&args(&["-template", "a", "-bogus", "1"]), &no_env)
            .unwrap_err()
            .contains("-bogus")
    );
    assert!(parse_args(&args(&["-template"]), &no_env).is_err());
    assert_eq!(parse_args(&args(&["-help"]), &no_env).unwrap(), None);
}

#[test]
fn parse_error_names_file_and_line() {
    // gtmpl's own line numbers drift after multi-line text; these are the real lines.
    let cases = [
        ("a\nb\n{{.Index}\nx\n", 3, "unexpected } in operand"),
        ("{{/* c\nc2 */}}\nb\n{{ nosuch }}\nx\n", 4, "nosuch"),
        ("a\n{{if true}}\nb\n{{end}}\n{{end}}\nx\n", 5, "{{end}}"),
        // Unclosed block: where it opens, not an earlier block that closes.
        (
            "{{range .Shards}}\nx\n{{end}}\n{{if .TLSEnabled}}\n{{range .Shards}}\n{{end}}\ny\n",
            4,
            "EOF",
        ),
        ("a\nb {{ .ClusterName", 2, "unexpected"),
    ];
    for (text, line, what) in cases {
        let e = render("conf/x.tmpl", text, &Vars::default()).unwrap_err();
        assert!(
            e.starts_with(&format!("conf/x.tmpl:{line}: ")) && e.contains(what),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn unknown_field_names_file_and_line() {
    let e = render(
        "x.tmpl",
        "[general]\nport = 5432\n{{range .Shards}}{{.Index}}{{end}}\nname = \"{{.ClusterNme}}\"\n",
        &Vars::default(),
    )
    .unwrap_err();
    assert!(
        e.starts_with("x.tmpl:4: ") && e.contains("ClusterNme"),
        "{e}"
    );
    // Inside range: a shard has no .Host.
    let e = render(
        "x.tmpl",
        "a\n{{range .Shards}}\n{{.Host}}\n{{end}}",
        &Vars::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("x.tmpl:3: ") && e.contains("Host"), "{e}");
}

#[test]
fn env_function_and_its_error() {
    let e = render(
        "u.tmpl",
        "x\npassword = \"{{env \"OROCHI_CONFIG_GEN_TEST_UNSET\"}}\"\n",
        &Vars::default(),
    )
    .unwrap_err();
    assert!(
        e.starts_with("u.tmpl:2: ") && e.contains("OROCHI_CONFIG_GEN_TEST_UNSET"),
        "{e}"
    );
    let out = render(
        "u.tmpl",
        "{{env \"OROCHI_CONFIG_GEN_TEST_UNSET\" \"fallback\"}} {{env \"PATH\" \"\" | len | lt 0}}",
        &Vars::default(),
    )
    .unwrap();
    assert_eq!(out, "fallback true");
}
