"""Packages of this operator that mirror upstream ray-operator/pkg."""
