package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Paths of the rules file and of the PrometheusRule generated from it, from
// the repository root.
const (
	RulesPath          = "k8s/monitoring/rules/scalable-app.rules.yml"
	PrometheusRulePath = "k8s/monitoring/kube-prometheus-stack/prometheusrule.yaml"
)

// PrometheusRuleYAML wraps the rules file, comments and all, into the
// prometheus-operator's PrometheusRule, so a kube-prometheus-stack
// Prometheus evaluates exactly the rules the plain one does.
func PrometheusRuleYAML(root string) ([]byte, error) {
	src, err := os.ReadFile(filepath.Join(root, RulesPath))
	if err != nil {
		return nil, fmt.Errorf("read the rules: %w", err)
	}
	var rules yaml.Node
	if err := yaml.Unmarshal(src, &rules); err != nil {
		return nil, fmt.Errorf("parse %s: %w", RulesPath, err)
	}
	if rules.Kind != yaml.DocumentNode || len(rules.Content) != 1 || rules.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s is not one YAML mapping", RulesPath)
	}
	spec := rules.Content[0]
	spec.HeadComment = "" // the file's header describes the file, not the object
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	doc := &yaml.Node{Kind: yaml.DocumentNode, HeadComment: "Generated from " + RulesPath + " by `make monitoring-gen`; do not edit.", Content: []*yaml.Node{mapping(
		str("apiVersion"), str("monitoring.coreos.com/v1"),
		str("kind"), str("PrometheusRule"),
		str("metadata"), mapping(
			str("name"), str("scalable-app"),
			str("labels"), mapping(
				str("app.kubernetes.io/name"), str("scalable-app"),
				str("app.kubernetes.io/part-of"), str("scalable-app"),
				// kube-prometheus-stack's Prometheus selects the rules of its Helm release.
				str("release"), str("kube-prometheus-stack"),
			),
		),
		str("spec"), spec,
	)}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode the PrometheusRule: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode the PrometheusRule: %w", err)
	}
	return b.Bytes(), nil
}
