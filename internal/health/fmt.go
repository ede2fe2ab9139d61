package health

import "fmt"

var sprintf = fmt.Sprintf
