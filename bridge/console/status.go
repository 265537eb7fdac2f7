package console

import (
	"net/http"
	"time"

	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

type statusData struct {
	Status
	Chart       any
	SentLastMin float64
}

func (c *Console) statusPage(w http.ResponseWriter, r *http.Request) {
	st := c.opts.Status(r.Context())
	now := time.Now()
	series := c.opts.History.Rates(pipeline.Outcomes, c.opts.Sample())
	d := statusData{Status: st, Chart: chart(series, now)}
	for _, s := range series {
		if s.Outcome == pipeline.OutcomeSent && len(s.Points) > 0 {
			d.SentLastMin = s.Points[len(s.Points)-1].PerMinute
		}
	}
	c.render(w, r, "status", d)
}
