package policies

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Default grant of a partner that AddMerchant creates.
const (
	DefaultPartnerRate  = 20
	DefaultPartnerBurst = 40
)

// MerchantEntry is what AddMerchant writes: a merchant under merchants:
// with its region (empty: the defaults alone), and the partners that may
// query it.
type MerchantEntry struct {
	ID       string
	Region   string
	Partners []string
}

// AddMerchant returns the policy file data with e added under merchants: and
// its id appended to each partner's merchants list (a partner not in the
// file is created with DefaultPartnerRate and DefaultPartnerBurst). Comments
// and the order of the rest of the file are kept. A merchant already in the
// policy with the same region is left as it is (its partners are still
// granted); one with another region is an error, as is a result that Parse
// refuses (a region the file does not define, say). file names the policy
// in errors.
func AddMerchant(file string, data []byte, e MerchantEntry) ([]byte, error) {
	if !idPattern.MatchString(e.ID) {
		return nil, fmt.Errorf("add merchant to %s: id %q: want 1–64 letters, digits, '.', '_' or '-'", file, e.ID)
	}
	if _, err := Parse(file, data); err != nil {
		return nil, fmt.Errorf("add merchant to %s: the policy as it is: %w", file, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("add merchant to %s: %w", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("add merchant to %s: the policy is not a YAML mapping", file)
	}
	root := doc.Content[0]
	merchants := mappingValue(root, "merchants")
	if existing := lookup(merchants, e.ID); existing != nil {
		region := ""
		if r := lookup(existing, "region"); r != nil {
			region = r.Value
		}
		if region != e.Region {
			return nil, fmt.Errorf("add merchant to %s: %s is already in the policy with region %q, not %q", file, e.ID, region, e.Region)
		}
	} else {
		entry := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		if e.Region != "" {
			entry.Content = append(entry.Content, scalar("region"), scalar(e.Region))
		}
		merchants.Style = 0 // a flow "{}" becomes a block mapping
		merchants.Content = append(merchants.Content, scalar(e.ID), entry)
	}
	if len(e.Partners) > 0 {
		partners := mappingValue(root, "partners")
		for _, id := range e.Partners {
			if !idPattern.MatchString(id) {
				return nil, fmt.Errorf("add merchant to %s: partner id %q: want 1–64 letters, digits, '.', '_' or '-'", file, id)
			}
			p := lookup(partners, id)
			if p == nil {
				p = &yaml.Node{Kind: yaml.MappingNode}
				p.Content = append(p.Content,
					scalar("merchants"), &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle},
					scalar("rate_per_second"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(DefaultPartnerRate)},
					scalar("burst"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(DefaultPartnerBurst)})
				partners.Style = 0
				partners.Content = append(partners.Content, scalar(id), p)
			}
			list := mappingValue(p, "merchants")
			if list.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("add merchant to %s: partner %s: merchants is not a list", file, id)
			}
			if !slices.ContainsFunc(list.Content, func(n *yaml.Node) bool { return n.Value == e.ID }) {
				list.Content = append(list.Content, scalar(e.ID))
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("add merchant to %s: %w", file, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("add merchant to %s: %w", file, err)
	}
	if _, err := Parse(file, buf.Bytes()); err != nil {
		var el ErrorList
		if errors.As(err, &el) {
			return nil, fmt.Errorf("add merchant %s to %s: the result is not a valid policy: %w", e.ID, file, err)
		}
		return nil, fmt.Errorf("add merchant %s to %s: %w", e.ID, file, err)
	}
	return buf.Bytes(), nil
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mappingValue returns the value of key in mapping m, adding an empty
// mapping under key when it is absent (or null).
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if v := lookup(m, key); v != nil {
		if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "") {
			v.Kind, v.Tag, v.Value, v.Style = yaml.MappingNode, "", "", 0
		}
		return v
	}
	v := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, scalar(key), v)
	return v
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
