// A fixture for the scan suite: a program that calls a function with a known
// vulnerability (GO-2022-1059, CVE-2022-32149, fixed in golang.org/x/text
// v0.3.8), so govulncheck and Trivy must both report it. Never built into
// anything else.
module example.com/vulnmod

go 1.22

require golang.org/x/text v0.3.7
