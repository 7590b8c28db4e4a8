from payments_api.cli import main

raise SystemExit(main())
