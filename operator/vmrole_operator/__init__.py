"""vmrole-operator: Windows Azure VM Role semantics for stateless fleets on Kubernetes."""
