"""World: schema → knowledge graph → corpus → verification, stored in a world directory."""
