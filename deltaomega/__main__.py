from deltaomega.cli import main

raise SystemExit(main())
