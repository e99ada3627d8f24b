module spiffe-kpt/tests/gotemplate

go 1.21
