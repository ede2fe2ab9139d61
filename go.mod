module github.com/tunroute/tunroute

go 1.26.8
