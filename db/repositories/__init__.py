"""Small repository functions: parameterised SQL, one job each."""
