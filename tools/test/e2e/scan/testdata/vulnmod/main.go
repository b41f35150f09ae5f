// Command vulnmod parses an Accept-Language header with a version of
// golang.org/x/text whose parser a crafted header can stall (GO-2022-1059).
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	tags, _, err := language.ParseAcceptLanguage(os.Getenv("ACCEPT_LANGUAGE"))
	fmt.Println(tags, err)
}
